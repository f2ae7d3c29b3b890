import { posix } from 'node:path';
import { createPathFilter } from '../actions/path-filter.js';
import { joinInside, unsafePathReason } from '../actions/safe-relative-path.js';
import { isTemporaryName } from '../actions/temporary-name.js';
import { formatErrorLine, SyncError, toSyncError } from '../errors/index.js';
import type { Storage, StorageEntry } from '../storage/storage.js';

/** One entry of a side, as the plan sees it: a listed entry without its base name. */
export type MirrorEntry = Omit<StorageEntry, 'name'>;

/** A path passed over on purpose, with the reason the operator is told. */
export interface IgnoredPath {
  relPath: string;
  /** Undefined for quiet exclusions (include/exclude). */
  reason?: string;
}

export interface SideListing {
  /** Entries in scope, folders before their contents. */
  entries: Map<string, MirrorEntry>;
  /** Out of scope: excluded, skipped links, odd names. On either side, the replica never touches these paths. */
  ignored: IgnoredPath[];
  /** Leftover temporaries (`.name….part`) from an interrupted pass. */
  temporaries: string[];
  /** Folders below the root that could not be read: the listing is incomplete. */
  unreadable: { relPath: string; error: string }[];
}

export interface ListSideInput {
  storage: Storage;
  rootPath: string;
  side: 'source' | 'replica';
  include: readonly string[];
  exclude: readonly string[];
  /** Source only: what to do with symbolic links. */
  links: 'skip' | 'copy-as-link' | 'follow';
  signal?: AbortSignal;
}

/** Link targets resolved together (follow): each costs a round trip or two on SFTP. */
const LINK_BATCH = 32;

/**
 * Lists one side of a job recursively, once: a stream of metadata, never a read of
 * a file. Include/exclude decide what is in scope (dotfiles included: a mirror copies
 * them like any other file); an excluded folder is not descended into. On the source,
 * links are skipped, kept as links when their target stays inside the source, or
 * replaced by the file they point to when it is inside the source (follow). A root
 * that is missing or unreachable rejects; a subfolder that cannot be read is noted.
 */
export async function listSide(input: ListSideInput): Promise<SideListing> {
  const { storage, rootPath, side } = input;
  const inScope = createPathFilter(input.include, input.exclude, { dotPaths: true });
  // Folders are in scope unless excluded: include names files, and every folder is mirrored.
  const dirInScope = createPathFilter([], input.exclude, { dotPaths: true });
  const listing: SideListing = { entries: new Map(), ignored: [], temporaries: [], unreadable: [] };
  const links: StorageEntry[] = [];

  const iterator = storage.list(rootPath, {
    recursive: true,
    ...(input.signal ? { signal: input.signal } : {}),
    skipDir: (relPath) => !dirInScope(relPath) || isTemporaryName(posix.basename(relPath)),
    onError: (error, relPath) =>
      listing.unreadable.push({ relPath, error: formatErrorLine(toSyncError(error, { path: relPath })) }),
  });
  for await (const entry of iterator) {
    const { relPath } = entry;
    if (isTemporaryName(entry.name)) {
      if (side === 'replica' && entry.type !== 'dir') listing.temporaries.push(relPath);
      else listing.ignored.push({ relPath });
      continue;
    }
    const unsafe = unsafePathReason(relPath);
    if (unsafe !== undefined) {
      listing.ignored.push({ relPath, reason: `a name that cannot be used safely (${unsafe})` });
      continue;
    }
    if (entry.type === 'dir') {
      if (dirInScope(relPath)) listing.entries.set(relPath, toMirrorEntry(entry));
      else listing.ignored.push({ relPath });
      continue;
    }
    if (!inScope(relPath)) {
      listing.ignored.push({ relPath });
      continue;
    }
    if (side === 'replica') {
      listing.entries.set(relPath, toMirrorEntry(entry));
      continue;
    }
    if (entry.type === 'other') {
      listing.ignored.push({ relPath, reason: 'not a regular file, folder or link (socket, device, fifo)' });
    } else if (entry.type === 'file') {
      listing.entries.set(relPath, toMirrorEntry(entry));
    } else if (input.links === 'skip') {
      listing.ignored.push({ relPath, reason: 'a symbolic link (links: skip)' });
    } else if (input.links === 'copy-as-link') {
      addLinkAsLink(listing, entry);
    } else {
      links.push(entry);
    }
  }
  if (links.length > 0) await followLinks(input, listing, links);
  return listing;
}

/** copy-as-link: the link is kept as is when its target, read relative to the link, stays inside the source. */
function addLinkAsLink(listing: SideListing, entry: StorageEntry): void {
  const target = entry.linkTarget;
  if (target === undefined) {
    listing.ignored.push({ relPath: entry.relPath, reason: 'a symbolic link whose target cannot be read' });
    return;
  }
  const resolved = posix.normalize(posix.join(posix.dirname(entry.relPath), target));
  if (posix.isAbsolute(target) || resolved === '..' || resolved.startsWith('../')) {
    listing.ignored.push({
      relPath: entry.relPath,
      reason: 'a symbolic link that points outside the source',
    });
    return;
  }
  listing.entries.set(entry.relPath, toMirrorEntry(entry));
}

/**
 * follow: a link stands for the file it points to, provided that file (links
 * resolved) is inside the source. Links to folders are not followed: the tree they
 * name is either mirrored already or outside, and following them could loop.
 */
async function followLinks(input: ListSideInput, listing: SideListing, links: StorageEntry[]): Promise<void> {
  const { storage, rootPath } = input;
  const realRoot = await storage.realPath(rootPath);
  for (let start = 0; start < links.length; start += LINK_BATCH) {
    const batch = links.slice(start, start + LINK_BATCH);
    const resolved = await Promise.all(
      batch.map(async (entry) => {
        const linkPath =
          storage.kind === 'local'
            ? joinInside(rootPath, entry.relPath)
            : posix.join(rootPath, entry.relPath);
        try {
          const realTarget = await storage.realPath(linkPath);
          if (!isInsidePath(realTarget, realRoot))
            return { entry, reason: 'a symbolic link that points outside the source' };
          const target = await storage.stat(linkPath);
          if (target.type !== 'file') {
            return {
              entry,
              reason: 'a symbolic link to a folder (links: follow follows links to files only)',
            };
          }
          return { entry, target };
        } catch (err) {
          if (err instanceof SyncError && err.code === 'E_NOT_FOUND') {
            return { entry, reason: 'a symbolic link whose target does not exist' };
          }
          throw err;
        }
      }),
    );
    for (const item of resolved) {
      if ('target' in item && item.target) {
        listing.entries.set(item.entry.relPath, {
          relPath: item.entry.relPath,
          type: 'file',
          sizeBytes: item.target.sizeBytes,
          mtimeMs: item.target.mtimeMs,
          mode: item.target.mode,
        });
      } else {
        listing.ignored.push({
          relPath: item.entry.relPath,
          ...('reason' in item ? { reason: item.reason } : {}),
        });
      }
    }
  }
}

function isInsidePath(child: string, parent: string): boolean {
  const rel = posix.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel));
}

function toMirrorEntry(entry: StorageEntry): MirrorEntry {
  return {
    relPath: entry.relPath,
    type: entry.type,
    sizeBytes: entry.sizeBytes,
    mtimeMs: entry.mtimeMs,
    mode: entry.mode,
    ...(entry.linkTarget !== undefined ? { linkTarget: entry.linkTarget } : {}),
  };
}
