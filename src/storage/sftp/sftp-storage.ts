import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Stats } from 'ssh2';
import type { SftpConnectionConfig } from '../../config/config-types.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, SyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { entryTypeOfMode } from '../entry-type.js';
import { HashWriteWorker } from '../hash-write-worker.js';
import type { Storage, StorageStat } from '../storage.js';
import { BufferPools } from './buffer-pool.js';
import { describeWhere, SFTP_STATUS } from './map-sftp-error.js';
import { sftpDownload } from './sftp-download.js';
import { sftpList } from './sftp-list.js';
import { openSftpReadStream } from './sftp-read-stream.js';
import * as requests from './sftp-requests.js';
import type { SftpSession } from './sftp-session.js';
import { SftpSessionPool } from './sftp-session-pool.js';
import { sftpUpload } from './sftp-upload.js';

export interface CreateSftpStorageOptions {
  connection: SftpConnectionConfig;
  log: Logger;
  /** Backoff between connect attempts; the project default when absent. */
  retryDelays?: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>;
  /** Log the SSH protocol at trace level (`-vvv`). */
  traceProtocol?: boolean;
}

/**
 * The Storage of one SFTP server: a small pool of SSH sessions (see
 * SftpSessionPool), every request under a deadline, errors with op, path and
 * `user@host:port`. Read-only requests are tried once more when their session
 * broke under them; writes and transfers are not (the caller retries whole files).
 */
export function createSftpStorage(options: CreateSftpStorageOptions): Storage {
  const { connection, log } = options;
  const hostLabel = `${connection.username}@${connection.host}:${connection.port}`;
  const pool = new SftpSessionPool({
    connection,
    hostLabel,
    log,
    retryDelays: options.retryDelays ?? DEFAULT_RETRY_POLICY,
    traceProtocol: options.traceProtocol === true,
  });
  const hashWriteWorker = new HashWriteWorker();
  const transferSettings = {
    hashWriteWorker,
    // Enough for every read in flight of several downloads; the rest is left to the GC.
    readBuffers: new BufferPools(Math.max(64, connection.readConcurrency * 4)),
    chunkSizeBytes: connection.chunkSizeBytes,
    readConcurrency: connection.readConcurrency,
    writeConcurrency: connection.readConcurrency,
    operationTimeoutMs: connection.operationTimeoutMs,
    log,
  };
  // A failure to connect names the path the caller wanted too (its op stays `connect`).
  const readOnly = <T>(path: string, fn: (session: SftpSession) => Promise<T>): Promise<T> =>
    withPath(pool.use(fn, { idempotent: true }), path);
  const write = <T>(path: string, fn: (session: SftpSession) => Promise<T>): Promise<T> =>
    withPath(pool.use(fn), path);
  const acquire = (path: string, signal: AbortSignal | undefined) => withPath(pool.acquire(signal), path);

  return {
    kind: 'sftp',
    label: `sftp://${hostLabel}`,

    list(dirPath, listOptions = {}) {
      return sftpList(pool, dirPath, listOptions, log);
    },

    stat(path, statOptions = {}) {
      return readOnly(path, async (session) =>
        toStorageStat(
          statOptions.followLinks === false
            ? await requests.lstatPath(session, 'stat', path)
            : await requests.statPath(session, 'stat', path),
        ),
      );
    },

    readLink(path) {
      return readOnly(path, (session) => requests.readLink(session, 'readLink', path));
    },

    realPath(path) {
      return readOnly(path, (session) => requests.realPath(session, 'realPath', path));
    },

    async openRead(path, readOptions = {}): Promise<Readable> {
      const { session, release } = await acquire(path, readOptions.signal);
      try {
        return await openSftpReadStream(session, path, readOptions, transferSettings, release);
      } catch (err) {
        release();
        throw err;
      }
    },

    async download(srcPath, localPath, transferOptions = {}) {
      const { session, release } = await acquire(srcPath, transferOptions.signal);
      try {
        return await sftpDownload(session, srcPath, localPath, transferOptions, transferSettings);
      } finally {
        release();
      }
    },

    async upload(localPath, dstPath, transferOptions = {}) {
      const { session, release } = await acquire(dstPath, transferOptions.signal);
      try {
        return await sftpUpload(session, localPath, dstPath, transferOptions, transferSettings);
      } finally {
        release();
      }
    },

    rename(fromPath, toPath, renameOptions) {
      return write(fromPath, (session) => rename(session, fromPath, toPath, renameOptions.overwrite));
    },

    remove(path) {
      return write(path, (session) => requests.removeFile(session, 'remove', path));
    },

    removeDir(path) {
      return write(path, (session) => removeDir(session, path));
    },

    mkdirp(path, mkdirOptions = {}) {
      return write(path, (session) => mkdirp(session, path, mkdirOptions.mode));
    },

    setTimes(path, mtimeMs) {
      // SFTP v3 carries whole seconds.
      const seconds = Math.floor(mtimeMs / 1000);
      return write(path, (session) => requests.setTimes(session, 'setTimes', path, seconds, seconds));
    },

    setMode(path, mode) {
      return write(path, (session) => requests.setMode(session, 'setMode', path, mode));
    },

    freeSpace(path) {
      return readOnly(path, (session) => freeSpace(session, path));
    },

    async close() {
      await pool.close();
      await hashWriteWorker.close();
    },
  };
}

async function withPath<T>(promise: Promise<T>, path: string): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw err instanceof SyncError ? err.withContext({ path }) : err;
  }
}

function toStorageStat(stats: Stats): StorageStat {
  const mode = typeof stats.mode === 'number' ? stats.mode : 0;
  return {
    type: entryTypeOfMode(mode),
    sizeBytes: typeof stats.size === 'number' ? stats.size : 0,
    mtimeMs: typeof stats.mtime === 'number' ? stats.mtime * 1000 : 0,
    mode,
  };
}

/**
 * With overwrite: posix-rename@openssh.com (rename(2), atomic replace) when the
 * server offers it, else remove-then-rename, which is NOT atomic: for a moment the
 * target is missing, and a crash in between leaves only the source. Without
 * overwrite: plain SFTP rename, which refuses an existing target; a bare FAILURE is
 * told apart by looking at the target.
 */
async function rename(
  session: SftpSession,
  fromPath: string,
  toPath: string,
  overwrite: boolean,
): Promise<void> {
  const op = 'rename';
  if (overwrite) {
    if (session.extensions.posixRename) return requests.renamePosix(session, op, fromPath, toPath);
    try {
      await requests.removeFile(session, op, toPath);
    } catch (err) {
      if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND')) throw err;
    }
    return requests.renamePlain(session, op, fromPath, toPath);
  }
  try {
    await requests.renamePlain(session, op, fromPath, toPath);
  } catch (err) {
    if (!isBareFailure(err) || !(await exists(session, op, toPath))) throw err;
    const context = { op, path: fromPath, dstPath: toPath, host: session.hostLabel };
    throw new SyncError('E_EXISTS', `rename failed: the target already exists${describeWhere(context)}`, {
      ...context,
      hint: 'remove the target or allow overwriting',
      cause: err,
    });
  }
}

async function removeDir(session: SftpSession, path: string): Promise<void> {
  const op = 'removeDir';
  try {
    await requests.removeEmptyDir(session, op, path);
  } catch (err) {
    if (!isBareFailure(err)) throw err;
    const stats = await requests.lstatPath(session, op, path).catch(() => undefined);
    const context = { op, path, host: session.hostLabel };
    if (stats && entryTypeOfMode(stats.mode) === 'dir') {
      throw new SyncError('E_EXISTS', `removeDir failed: folder not empty${describeWhere(context)}`, {
        ...context,
        hint: 'empty the folder first',
        cause: err,
      });
    }
    if (stats) {
      throw new SyncError('E_IO', `removeDir failed: not a folder${describeWhere(context)}`, {
        ...context,
        hint: 'use remove for files and links',
        cause: err,
      });
    }
    throw err;
  }
}

/** Walks up to the nearest existing folder, then creates the missing ones; a folder made meanwhile by someone else is fine. */
async function mkdirp(session: SftpSession, path: string, mode: number | undefined): Promise<void> {
  const op = 'mkdirp';
  const missing: string[] = [];
  let current = posix.normalize(path).replace(/(.)\/+$/, '$1');
  for (;;) {
    const stats = await requests.statPath(session, op, current).catch((err: unknown) => {
      if (err instanceof SyncError && err.code === 'E_NOT_FOUND') return undefined;
      throw err;
    });
    if (stats) {
      if (entryTypeOfMode(stats.mode) !== 'dir') throw notAFolder(session, current);
      break;
    }
    missing.push(current);
    const parent = posix.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const dir of missing.reverse()) {
    try {
      await requests.makeDir(session, op, dir, mode);
    } catch (err) {
      const stats = await requests.statPath(session, op, dir).catch(() => undefined);
      if (!stats) throw err;
      if (entryTypeOfMode(stats.mode) !== 'dir') throw notAFolder(session, dir);
    }
  }
}

function notAFolder(session: SftpSession, path: string): SyncError {
  const context = { op: 'mkdirp', path, host: session.hostLabel };
  return new SyncError('E_EXISTS', `mkdirp failed: exists and is not a folder${describeWhere(context)}`, {
    ...context,
    hint: 'remove or rename what is in the way',
  });
}

/** statvfs@openssh.com on the path, or its nearest existing parent; null when the server does not offer it. */
async function freeSpace(session: SftpSession, path: string): Promise<number | null> {
  if (!session.extensions.statvfs) return null;
  let current = path;
  for (;;) {
    try {
      const info = await requests.statvfs(session, 'freeSpace', current);
      return info.f_bavail * info.f_frsize;
    } catch (err) {
      const parent = posix.dirname(current);
      if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND') || parent === current) throw err;
      current = parent;
    }
  }
}

async function exists(session: SftpSession, op: string, path: string): Promise<boolean> {
  try {
    await requests.lstatPath(session, op, path);
    return true;
  } catch {
    return false;
  }
}

function isBareFailure(err: unknown): boolean {
  return err instanceof SyncError && err.context.sftpStatus === SFTP_STATUS.FAILURE;
}
