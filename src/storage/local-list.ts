import { type Dir, lstatSync, readlinkSync, type Stats } from 'node:fs';
import { opendir } from 'node:fs/promises';
import { join } from 'node:path';
import { isRetryable, SyncError, toSyncError } from '../errors/index.js';
import { entryTypeOfMode } from './entry-type.js';
import type { ListOptions, StorageEntry } from './storage.js';

const OP = 'list';
/**
 * Entries read and `lstat`ed in one go, with direct system calls (a few µs each on a
 * local disk; through the thread pool each cost ~20 µs of hand-offs), before the
 * listing yields to the event loop again.
 */
const LSTAT_BATCH = 64;

/**
 * Streams the entries below `dirPath` with `fs.opendir` (a folder is never read
 * whole into memory), one `lstat` per entry, links reported as links with their
 * target. Each folder's entries come as they are read; subfolders are listed after
 * it, depth first, so a folder always comes before its contents.
 *
 * Names are read as bytes and reported decoded as UTF-8: bytes that are not valid
 * UTF-8 become U+FFFD. Such an entry is still reported (and a folder so named still
 * listed, since the walk keeps the real bytes), but its reported name cannot be used
 * to open it: that fails with E_NOT_FOUND.
 */
export async function* localList(dirPath: string, options: ListOptions): AsyncGenerator<StorageEntry> {
  const pending: Folder[] = [{ relDir: '', pathBytes: Buffer.from(dirPath) }];
  while (pending.length > 0) {
    const folder = pending.pop();
    if (!folder) break;
    const { relDir, pathBytes } = folder;
    const folderPath = relDir === '' ? dirPath : join(dirPath, relDir);
    throwIfAborted(options.signal, folderPath);
    let dir: Dir;
    try {
      // Node types `encoding` as a text encoding, but 'buffer' works and gives the names' real bytes.
      dir = await opendir(pathBytes, { bufferSize: LSTAT_BATCH, encoding: 'buffer' as BufferEncoding });
    } catch (err) {
      const mapped = toSyncError(err, { op: OP, path: folderPath });
      if (reportFolderError(mapped, relDir, options)) continue;
      throw mapped;
    }
    const subdirs: Folder[] = [];
    try {
      for (;;) {
        throwIfAborted(options.signal, folderPath);
        let entries: LocalEntry[] | null;
        try {
          entries = readBatch(dir, pathBytes, relDir);
        } catch (err) {
          const mapped = toSyncError(err, { op: OP, path: folderPath });
          if (reportFolderError(mapped, relDir, options)) break;
          throw mapped;
        }
        if (!entries) break;
        for (const { entry, pathBytes: entryPathBytes } of entries) {
          yield entry;
          if (entry.type === 'dir' && options.recursive && !options.skipDir?.(entry.relPath)) {
            subdirs.push({ relDir: entry.relPath, pathBytes: entryPathBytes });
          }
        }
      }
    } finally {
      await dir.close().catch(() => undefined);
    }
    for (let index = subdirs.length - 1; index >= 0; index -= 1) {
      const subdir = subdirs[index];
      if (subdir) pending.push(subdir);
    }
  }
}

interface Folder {
  relDir: string;
  /** The folder's path as the file system has it: names may not be valid UTF-8. */
  pathBytes: Buffer;
}

interface LocalEntry {
  entry: StorageEntry;
  pathBytes: Buffer;
}

const SLASH = Buffer.from('/');

/** Up to LSTAT_BATCH entries with their metadata; null at the end of the folder. */
function readBatch(dir: Dir, folderBytes: Buffer, relDir: string): LocalEntry[] | null {
  const entries: LocalEntry[] = [];
  let read = 0;
  while (read < LSTAT_BATCH) {
    const dirent = dir.readSync();
    if (!dirent) break;
    read += 1;
    const entry = describeEntry(folderBytes, relDir, dirent.name as unknown as Buffer);
    if (entry) entries.push(entry);
  }
  return read === 0 ? null : entries;
}

function describeEntry(folderBytes: Buffer, relDir: string, nameBytes: Buffer): LocalEntry | undefined {
  const path = Buffer.concat([folderBytes, SLASH, nameBytes]);
  const name = nameBytes.toString('utf8');
  // Removed between readdir and lstat: it is simply no longer there.
  const stats: Stats | undefined = lstatSync(path, { throwIfNoEntry: false });
  if (!stats) return undefined;
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
      entry.linkTarget = readlinkSync(path, 'utf8');
    } catch {
      // Replaced between lstat and readlink: reported without a target.
    }
  }
  return { entry, pathBytes: path };
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
