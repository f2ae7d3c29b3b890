import { posix } from 'node:path';
import type { FileEntryWithStats } from 'ssh2';
import { isRetryable, SyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { entryTypeOfMode } from '../entry-type.js';
import type { ListOptions, StorageEntry } from '../storage.js';
import { closeHandle, openDir, readDirBatch, readLink } from './sftp-requests.js';
import type { SftpSession } from './sftp-session.js';
import type { SftpSessionPool } from './sftp-session-pool.js';

const OP = 'list';

/**
 * Streams the entries below `dirPath`: OPENDIR, then READDIR batches as the server
 * sends them (ssh2's `readdir(path)` would buffer the whole folder). Each folder's
 * entries are reported as they arrive; its subfolders are listed after it, depth
 * first, so a folder always comes before its contents and at most one remote
 * folder handle is open at a time. Only the names of subfolders still to visit are
 * held in memory.
 *
 * Names are decoded as UTF-8 by ssh2 (SFTP v3 does not say; every modern server
 * sends UTF-8). Bytes that are not valid UTF-8 become U+FFFD, so such an entry is
 * reported but its name cannot be used to open it (that fails with E_NOT_FOUND);
 * a folder so named cannot be descended into, which goes to `onError` like any
 * folder that cannot be read.
 */
export async function* sftpList(
  pool: SftpSessionPool,
  dirPath: string,
  options: ListOptions,
  log: Logger,
): AsyncGenerator<StorageEntry> {
  // Folders still to list, as relative paths; popped from the end, so pushed in reverse.
  const pending: string[] = [''];
  while (pending.length > 0) {
    const relDir = pending.pop() ?? '';
    const remoteDir = relDir === '' ? dirPath : posix.join(dirPath, relDir);
    throwIfAborted(options.signal, remoteDir);
    let listing: OpenListing;
    try {
      listing = await openListing(pool, remoteDir, options.signal);
    } catch (err) {
      if (reportFolderError(err, relDir, options)) continue;
      throw err;
    }
    const subdirs: string[] = [];
    try {
      for (;;) {
        throwIfAborted(options.signal, remoteDir);
        let batch: FileEntryWithStats[] | null;
        try {
          batch = await readDirBatch(listing.session, OP, remoteDir, listing.handle);
        } catch (err) {
          if (reportFolderError(err, relDir, options)) break;
          throw err;
        }
        if (!batch) break;
        const entries = await toEntries(listing.session, remoteDir, relDir, batch, log);
        for (const entry of entries) {
          yield entry;
          if (entry.type === 'dir' && options.recursive && !options.skipDir?.(entry.relPath)) {
            subdirs.push(entry.relPath);
          }
        }
      }
    } finally {
      await listing.close();
    }
    for (let index = subdirs.length - 1; index >= 0; index -= 1) pending.push(subdirs[index] ?? '');
  }
}

interface OpenListing {
  session: SftpSession;
  handle: Buffer;
  close(): Promise<void>;
}

/** OPENDIR is read-only: when the session broke under it, it is tried once more on a fresh one. */
async function openListing(
  pool: SftpSessionPool,
  remoteDir: string,
  signal?: AbortSignal,
): Promise<OpenListing> {
  for (let attempt = 1; ; attempt += 1) {
    const { session, release } = await pool.acquire(signal).catch((err: unknown) => {
      throw err instanceof SyncError ? err.withContext({ path: remoteDir }) : err;
    });
    try {
      const handle = await openDir(session, OP, remoteDir);
      return {
        session,
        handle,
        async close() {
          try {
            if (!session.broken) await closeHandle(session, OP, remoteDir, handle);
          } catch {
            // Nothing was written; a failed close only costs the server a handle until the session ends.
          } finally {
            release();
          }
        },
      };
    } catch (err) {
      release();
      if (attempt > 1 || !session.broken || !isRetryable(err)) throw err;
    }
  }
}

async function toEntries(
  session: SftpSession,
  remoteDir: string,
  relDir: string,
  batch: FileEntryWithStats[],
  log: Logger,
): Promise<StorageEntry[]> {
  const entries = batch
    .filter((item) => item.filename !== '.' && item.filename !== '..')
    .map((item): StorageEntry => {
      const mode = typeof item.attrs.mode === 'number' ? item.attrs.mode : 0;
      return {
        name: item.filename,
        relPath: relDir === '' ? item.filename : `${relDir}/${item.filename}`,
        type: entryTypeOfMode(mode),
        sizeBytes: typeof item.attrs.size === 'number' ? item.attrs.size : 0,
        mtimeMs: typeof item.attrs.mtime === 'number' ? item.attrs.mtime * 1000 : 0,
        mode,
      };
    });
  // Link targets for the whole batch at once: SFTP answers them in one round trip's time.
  await Promise.all(
    entries
      .filter((entry) => entry.type === 'link')
      .map(async (entry) => {
        const linkPath = posix.join(remoteDir, entry.name);
        try {
          entry.linkTarget = await readLink(session, OP, linkPath);
        } catch (err) {
          if (session.broken) throw err;
          log.debug({ op: OP, path: linkPath, host: session.hostLabel, err }, 'cannot read link target');
        }
      }),
  );
  return entries;
}

/** A subfolder that vanished or cannot be read goes to `onError` (when given); a dead connection never does. */
function reportFolderError(err: unknown, relDir: string, options: ListOptions): boolean {
  if (relDir === '' || !options.onError || isRetryable(err)) return false;
  if (!(err instanceof SyncError) || !['E_NOT_FOUND', 'E_PERMISSION', 'E_IO'].includes(err.code))
    return false;
  options.onError(err, relDir);
  return true;
}

function throwIfAborted(signal: AbortSignal | undefined, remoteDir: string): void {
  if (signal?.aborted) {
    throw new SyncError('E_ABORTED', `listing ${remoteDir} was stopped`, { op: OP, path: remoteDir });
  }
}
