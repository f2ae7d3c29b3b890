import { posix } from 'node:path';
import type { MaxDelete } from '../config/index.js';
import type { MirrorEntry } from './mirror-listing.js';

/** A file or link to write into the replica. */
export interface PlannedWrite {
  relPath: string;
  /** The source entry: a file, or a link (copy-as-link). */
  source: MirrorEntry;
  /** What the replica holds at that name now (replaced atomically), if anything. */
  replaced?: MirrorEntry;
}

/** Metadata to fix on a replica entry whose content is already right. */
export interface PlannedTouch {
  relPath: string;
  type: 'file' | 'dir';
  mtimeMs?: number;
  mode?: number;
}

/** Folders to create and files to write, in that order. */
export interface PlannedCreations {
  /** Shallowest first. */
  dirs: MirrorEntry[];
  writes: PlannedWrite[];
}

/**
 * Everything one pass will do to one replica, decided from the two listings before
 * anything is touched. Order of application: `before` (new folders, new and changed
 * files), `touches`, then the deletions (`removals`, then `dirRemovals` deepest
 * first), then `after`: what needed a name that a removal frees (a file where the
 * replica has a folder, and the like).
 */
export interface MirrorPlan {
  before: PlannedCreations;
  touches: PlannedTouch[];
  /** Files, links and other non-folders to remove. */
  removals: MirrorEntry[];
  /** Folders to remove, deepest first. */
  dirRemovals: MirrorEntry[];
  after: PlannedCreations;
  /** Source entries that cannot be placed, with why (a protected entry, or delete: false, in the way). */
  blocked: { relPath: string; reason: string }[];
  /** Source entries the replica already matches. */
  unchanged: number;
  /** Non-folders in scope: source and replica. */
  sourceFiles: number;
  replicaFiles: number;
}

export interface PlanMirrorInput {
  source: ReadonlyMap<string, MirrorEntry>;
  replica: ReadonlyMap<string, MirrorEntry>;
  /** Replica paths never touched (out of scope on either side); everything below them too. */
  protectedPaths: ReadonlySet<string>;
  /** compare: checksum — same-size files whose sha256 differs. Undefined compares size and mtime. */
  contentDiffers?: ReadonlySet<string>;
  /** `s` when either end is SFTP (v3 carries whole seconds). */
  mtimeResolution: 'ms' | 's';
  preserveMode: boolean;
  /** false: never remove anything from the replica. */
  delete: boolean;
}

const PERMISSION_BITS = 0o7777;

/** The plan for one job: pure, from the two listings. */
export function planMirror(input: PlanMirrorInput): MirrorPlan {
  const { source, replica } = input;
  const isProtected = (relPath: string): boolean =>
    selfOrAncestor(relPath, (path) => input.protectedPaths.has(path));
  const plan: MirrorPlan = {
    before: { dirs: [], writes: [] },
    touches: [],
    removals: [],
    dirRemovals: [],
    after: { dirs: [], writes: [] },
    blocked: [],
    unchanged: 0,
    sourceFiles: 0,
    replicaFiles: 0,
  };

  // Names where the replica holds something of another kind that must go first.
  const conflicts = new Set<string>();
  const blockedRoots = new Set<string>();
  for (const [relPath, wanted] of source) {
    const present = replica.get(relPath);
    if (!present || !mustClear(wanted, present)) continue;
    if (selfOrAncestor(relPath, (path) => conflicts.has(path) || blockedRoots.has(path))) continue;
    const reason = !input.delete
      ? `a ${kindOf(present)} is in the way in the replica and delete: false keeps it`
      : isProtected(relPath) || hasProtectedBelow(relPath, input.protectedPaths)
        ? `a ${kindOf(present)} in the replica is in the way and holds entries out of scope`
        : undefined;
    if (reason === undefined) conflicts.add(relPath);
    else {
      blockedRoots.add(relPath);
      plan.blocked.push({ relPath, reason });
    }
  }
  const underConflict = (relPath: string) => selfOrAncestor(relPath, (path) => conflicts.has(path));

  for (const [relPath, wanted] of source) {
    if (wanted.type !== 'dir') plan.sourceFiles += 1;
    if (selfOrAncestor(relPath, (path) => blockedRoots.has(path))) continue;
    const deferred = underConflict(relPath);
    const target = deferred ? plan.after : plan.before;
    const present = deferred ? undefined : replica.get(relPath);
    if (wanted.type === 'dir') {
      if (!present) target.dirs.push(wanted);
      else {
        const touch = modeTouch(input, wanted, present);
        if (touch) plan.touches.push({ relPath, type: 'dir', ...touch });
        else plan.unchanged += 1;
      }
      continue;
    }
    if (!present) {
      target.writes.push({ relPath, source: wanted });
      continue;
    }
    const verdict = compare(input, wanted, present);
    if (verdict === 'write') target.writes.push({ relPath, source: wanted, replaced: present });
    else if (verdict === 'same') plan.unchanged += 1;
    else plan.touches.push({ relPath, type: 'file', ...verdict });
  }

  // Replica entries that stay: their folders stay too.
  const keptDirs = new Set<string>();
  const removing = (entry: MirrorEntry): boolean =>
    underConflict(entry.relPath) ||
    (input.delete && !source.has(entry.relPath) && !isProtected(entry.relPath));
  for (const entry of replica.values()) {
    if (entry.type !== 'dir' && !isProtected(entry.relPath)) plan.replicaFiles += 1;
    if (entry.type !== 'dir' && removing(entry)) plan.removals.push(entry);
    else if (entry.type !== 'dir' || !removing(entry)) markAncestors(entry.relPath, keptDirs);
  }
  for (const path of input.protectedPaths) markAncestors(path, keptDirs);
  for (const entry of replica.values()) {
    if (entry.type === 'dir' && removing(entry) && !keptDirs.has(entry.relPath)) plan.dirRemovals.push(entry);
  }
  plan.dirRemovals.sort((a, b) => depth(b.relPath) - depth(a.relPath));
  plan.before.dirs.sort((a, b) => depth(a.relPath) - depth(b.relPath));
  plan.after.dirs.sort((a, b) => depth(a.relPath) - depth(b.relPath));
  return plan;
}

/** How many removals `maxDelete` allows for a replica of `replicaFiles` files. */
export function deleteLimit(maxDelete: MaxDelete, replicaFiles: number): number {
  return maxDelete.kind === 'count'
    ? maxDelete.count
    : Math.floor((replicaFiles * maxDelete.percent) / 100 + 1e-9);
}

/** Whether two mtimes are the same at the resolution both ends keep. */
export function sameMtime(aMs: number, bMs: number, resolution: 'ms' | 's'): boolean {
  // Local mtimes carry nanoseconds that a double in milliseconds rounds: a copy can differ by a microsecond.
  return resolution === 's' ? Math.floor(aMs / 1000) === Math.floor(bMs / 1000) : Math.abs(aMs - bMs) < 1;
}

function compare(
  input: PlanMirrorInput,
  wanted: MirrorEntry,
  present: MirrorEntry,
): 'write' | 'same' | { mtimeMs?: number; mode?: number } {
  if (wanted.type === 'link') {
    return present.type === 'link' && present.linkTarget === wanted.linkTarget ? 'same' : 'write';
  }
  if (present.type !== 'file' || present.sizeBytes !== wanted.sizeBytes) return 'write';
  const mtimeDiffers = !sameMtime(wanted.mtimeMs, present.mtimeMs, input.mtimeResolution);
  if (input.contentDiffers ? input.contentDiffers.has(wanted.relPath) : mtimeDiffers) return 'write';
  const touch = {
    ...(mtimeDiffers ? { mtimeMs: wanted.mtimeMs } : {}),
    ...modeTouch(input, wanted, present),
  };
  return Object.keys(touch).length === 0 ? 'same' : touch;
}

function modeTouch(
  input: PlanMirrorInput,
  wanted: MirrorEntry,
  present: MirrorEntry,
): { mode?: number } | undefined {
  if (!input.preserveMode) return undefined;
  const mode = wanted.mode & PERMISSION_BITS;
  return mode === (present.mode & PERMISSION_BITS) ? undefined : { mode };
}

/** A folder where a file or link goes, or anything but a folder where a folder goes. */
function mustClear(wanted: MirrorEntry, present: MirrorEntry): boolean {
  return (wanted.type === 'dir') !== (present.type === 'dir');
}

function kindOf(entry: MirrorEntry): string {
  return entry.type === 'dir' ? 'folder' : entry.type === 'link' ? 'link' : 'file';
}

function hasProtectedBelow(relPath: string, protectedPaths: ReadonlySet<string>): boolean {
  const prefix = `${relPath}/`;
  for (const path of protectedPaths) if (path.startsWith(prefix)) return true;
  return false;
}

/** True when `test` holds for `relPath` or one of its parent folders. */
function selfOrAncestor(relPath: string, test: (path: string) => boolean): boolean {
  for (let path = relPath; path !== '.' && path !== ''; path = posix.dirname(path)) {
    if (test(path)) return true;
  }
  return false;
}

function markAncestors(relPath: string, into: Set<string>): void {
  for (let path = posix.dirname(relPath); path !== '.' && path !== ''; path = posix.dirname(path)) {
    if (into.has(path)) return;
    into.add(path);
  }
}

function depth(relPath: string): number {
  let count = 0;
  for (const char of relPath) if (char === '/') count += 1;
  return count;
}
