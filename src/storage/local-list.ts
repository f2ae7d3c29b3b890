import type { Dir, Stats } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isRetryable, SyncError, toSyncError } from '../errors/index.js';
import { entryTypeOfMode } from './entry-type.js';
import type { ListOptions, StorageEntry } from './storage.js';

const OP = 'list';
/** Entries `lstat`ed together: the calls run on libuv's thread pool, in parallel. */
const LSTAT_BATCH = 64;

/**
 * Streams the entries below `dirPath` with `fs.opendir` (a folder is never read
 * whole into memory), one `lstat` per entry, links reported as links with their
 * target. Each folder's entries come as they are read; subfolders are listed after
 * it, depth first, so a folder always comes before its contents. Names are decoded
 * as UTF-8 by Node; bytes that are not valid UTF-8 become U+FFFD (such an entry is
 * reported, but its name cannot be used to open it).
 */
export async function* localList(dirPath: string, options: ListOptions): AsyncGenerator<StorageEntry> {
  const pending: string[] = [''];
  while (pending.length > 0) {
    const relDir = pending.pop() ?? '';
    const folderPath = relDir === '' ? dirPath : join(dirPath, relDir);
    throwIfAborted(options.signal, folderPath);
    let dir: Dir;
    try {
      dir = await opendir(folderPath, { bufferSize: LSTAT_BATCH });
    } catch (err) {
      const mapped = toSyncError(err, { op: OP, path: folderPath });
      if (reportFolderError(mapped, relDir, options)) continue;
      throw mapped;
    }
    const subdirs: string[] = [];
    try {
      for (;;) {
        throwIfAborted(options.signal, folderPath);
        let entries: StorageEntry[] | null;
        try {
          entries = await readBatch(dir, folderPath, relDir);
        } catch (err) {
          const mapped = toSyncError(err, { op: OP, path: folderPath });
          if (reportFolderError(mapped, relDir, options)) break;
          throw mapped;
        }
        if (!entries) break;
        for (const entry of entries) {
          yield entry;
          if (entry.type === 'dir' && options.recursive && !options.skipDir?.(entry.relPath)) {
            subdirs.push(entry.relPath);
          }
        }
      }
    } finally {
      await dir.close().catch(() => undefined);
    }
    for (let index = subdirs.length - 1; index >= 0; index -= 1) pending.push(subdirs[index] ?? '');
  }
}

/** Up to LSTAT_BATCH entries with their metadata; null at the end of the folder. */
async function readBatch(dir: Dir, folderPath: string, relDir: string): Promise<StorageEntry[] | null> {
  const names: string[] = [];
  while (names.length < LSTAT_BATCH) {
    const dirent = await dir.read();
    if (!dirent) break;
    names.push(dirent.name);
  }
  if (names.length === 0) return null;
  const entries = await Promise.all(names.map((name) => describeEntry(folderPath, relDir, name)));
  return entries.filter((entry): entry is StorageEntry => entry !== undefined);
}

async function describeEntry(
  folderPath: string,
  relDir: string,
  name: string,
): Promise<StorageEntry | undefined> {
  const path = join(folderPath, name);
  let stats: Stats;
  try {
    stats = await lstat(path);
  } catch (err) {
    // Removed between readdir and lstat: it is simply no longer there.
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  const type = entryTypeOfMode(stats.mode);
  const entry: StorageEntry = {
    name,
    relPath: relDir === '' ? name : `${relDir}/${name}`,
    type,
    sizeBytes: stats.size,
    mtimeMs: stats.mtimeMs,
    mode: stats.mode,
  };
  if (type === 'link') {
    try {
      entry.linkTarget = await readlink(path);
    } catch {
      // Replaced between lstat and readlink: reported without a target.
    }
  }
  return entry;
}

function reportFolderError(err: SyncError, relDir: string, options: ListOptions): boolean {
  if (relDir === '' || !options.onError || isRetryable(err)) return false;
  options.onError(err, relDir);
  return true;
}

function throwIfAborted(signal: AbortSignal | undefined, folderPath: string): void {
  if (signal?.aborted) {
    throw new SyncError('E_ABORTED', `listing ${folderPath} was stopped`, { op: OP, path: folderPath });
  }
}
