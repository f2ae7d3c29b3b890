import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { SyncError, toSyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { createProgressReporter } from '../progress-reporter.js';
import type { TransferOptions, TransferResult } from '../storage.js';
import { startIdleWatchdog } from './idle-watchdog.js';
import { mapSftpError } from './map-sftp-error.js';
import {
  closeHandle,
  fsyncHandle,
  fstatHandle,
  openFile,
  removeFile,
  setHandleMode,
  setHandleTimes,
} from './sftp-requests.js';
import { brokenRequestError, type SftpSession } from './sftp-session.js';

export interface SftpUploadSettings {
  chunkSizeBytes: number;
  /** Writes in flight. */
  writeConcurrency: number;
  operationTimeoutMs: number;
  log: Logger;
}

/** Local read size: several SFTP writes per read system call. */
const LOCAL_READ_BYTES = 1024 * 1024;

/**
 * Copies the local file `localPath` to `remotePath` with several WRITE requests in
 * flight, hashing the bytes as they are read. ssh2 copies each write's bytes into
 * its packet at once, so one read buffer serves many writes. The remote file is
 * created or truncated; `fileMode` is applied with fchmod (the server's umask would
 * trim it at open); `fsync` uses fsync@openssh.com when the server offers it. The
 * size on the server is checked before close. On failure the partial remote file is
 * removed where the connection still allows.
 */
export async function sftpUpload(
  session: SftpSession,
  localPath: string,
  remotePath: string,
  options: TransferOptions,
  settings: SftpUploadSettings,
): Promise<TransferResult> {
  const op = 'upload';
  const startedAt = performance.now();
  const context = { op, path: remotePath, host: session.hostLabel, localPath };
  if (options.signal?.aborted) throw abortedError(context);

  let fileHandle: FileHandle;
  try {
    fileHandle = await open(localPath, 'r');
  } catch (err) {
    throw toSyncError(err, { op, path: localPath, host: session.hostLabel });
  }
  let handle: Buffer | undefined;
  // Only a file this upload opened (and so truncated) is removed on failure, never one it could not open.
  let opened = false;
  try {
    let localSizeBytes: number;
    try {
      localSizeBytes = (await fileHandle.stat()).size;
    } catch (err) {
      throw toSyncError(err, { op, path: localPath });
    }
    handle = await openFile(
      session,
      op,
      remotePath,
      'w',
      options.fileMode === undefined ? undefined : { mode: options.fileMode },
    );
    opened = true;
    if (options.fileMode !== undefined)
      await setHandleMode(session, op, remotePath, handle, options.fileMode);
    const { sizeBytes, sha256 } = await writePipelined(
      session,
      fileHandle,
      localSizeBytes,
      handle,
      remotePath,
      localPath,
      options,
      settings,
    );
    if (sizeBytes !== localSizeBytes) {
      throw new SyncError(
        'E_CHANGED',
        `upload failed: ${localPath} changed while it was read (${localSizeBytes} bytes at open, ${sizeBytes} read)`,
        { ...context, hint: 'the local file is still being written; it is copied again later' },
      );
    }
    if (options.mtimeMs !== undefined) {
      // SFTP v3 carries whole seconds.
      const seconds = Math.floor(options.mtimeMs / 1000);
      await setHandleTimes(session, op, remotePath, handle, seconds, seconds);
    }
    const synced = options.fsync === true && session.extensions.fsync;
    if (synced) await fsyncHandle(session, op, remotePath, handle);
    else if (options.fsync)
      settings.log.debug(context, 'server does not offer fsync@openssh.com; upload not fsynced');
    const remoteStats = await fstatHandle(session, op, remotePath, handle);
    if (typeof remoteStats.size === 'number' && remoteStats.size !== sizeBytes) {
      throw new SyncError(
        'E_VERIFY',
        `upload failed: ${remotePath} holds ${remoteStats.size} bytes after writing ${sizeBytes} (on ${session.hostLabel})`,
        { ...context, hint: 'the server lost data; check its disk, it is retried' },
      );
    }
    const closing = handle;
    handle = undefined;
    // A server may report a write failure only at close (NFS, quotas): that fails the upload.
    await closeHandle(session, op, remotePath, closing);
    return {
      sizeBytes,
      sha256,
      durationMs: Math.round(performance.now() - startedAt),
      synced,
      mtimeSet: options.mtimeMs !== undefined,
    };
  } catch (err) {
    if (opened && !session.broken) {
      if (handle) await closeHandle(session, op, remotePath, handle).catch(() => undefined);
      await removeFile(session, op, remotePath).catch(() => undefined);
    }
    // Local-side failures (disk full, missing folder) name the server too: which transfer it was.
    throw err instanceof SyncError ? err.withContext({ host: session.hostLabel }) : toSyncError(err, context);
  } finally {
    await fileHandle.close().catch(() => undefined);
  }
}

async function writePipelined(
  session: SftpSession,
  fileHandle: FileHandle,
  localSizeBytes: number,
  handle: Buffer,
  remotePath: string,
  localPath: string,
  options: TransferOptions,
  settings: SftpUploadSettings,
): Promise<{ sizeBytes: number; sha256: string }> {
  const op = 'upload';
  const context = { op, path: remotePath, host: session.hostLabel };
  const writeBytes = Math.max(1, Math.min(settings.chunkSizeBytes, session.maxWriteBytes));
  const maxInFlight = Math.max(1, settings.writeConcurrency);
  const hash = createHash('sha256');
  const progress = createProgressReporter(options.onProgress, localSizeBytes);
  const buffer = Buffer.allocUnsafe(Math.max(LOCAL_READ_BYTES, writeBytes));

  let inFlight = 0;
  // A holder, not a plain variable: the write callbacks set it and TypeScript does not see that.
  const state: { failure: SyncError | undefined } = { failure: undefined };
  const throwIfFailed = (): void => {
    const failure = state.failure;
    if (failure) throw failure;
  };
  let wake: (() => void) | undefined;
  const fail = (err: SyncError): void => {
    state.failure ??= err;
    wake?.();
  };
  const watchdog = startIdleWatchdog(settings.operationTimeoutMs, () => {
    fail(
      new SyncError(
        'E_TIMEOUT',
        `upload stalled: no reply for ${settings.operationTimeoutMs} ms (${remotePath} on ${session.hostLabel})`,
        {
          ...context,
          hint: 'the server or the network stopped answering; it is retried',
        },
      ),
    );
    session.destroy(`upload got no reply within ${settings.operationTimeoutMs} ms`);
  });
  const unsubscribe = session.onBreak((reason) => fail(brokenRequestError(reason, context)));
  const onAbort = (): void => fail(abortedError({ ...context, path: remotePath }));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const waitForRoom = async (limit: number): Promise<void> => {
    while (inFlight > limit && !state.failure) await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  };

  let position = 0;
  try {
    for (;;) {
      throwIfFailed();
      let bytesRead: number;
      try {
        ({ bytesRead } = await fileHandle.read(buffer, 0, buffer.length, position));
      } catch (err) {
        throw toSyncError(err, { op, path: localPath });
      }
      if (bytesRead === 0) break;
      const data = buffer.subarray(0, bytesRead);
      hash.update(data);
      for (let offset = 0; offset < bytesRead; offset += writeBytes) {
        await waitForRoom(maxInFlight - 1);
        throwIfFailed();
        const length = Math.min(writeBytes, bytesRead - offset);
        inFlight += 1;
        watchdog.started();
        try {
          session.sftp.write(handle, data, offset, length, position + offset, (err) => {
            inFlight -= 1;
            watchdog.completed();
            if (err) fail(mapSftpError(err, context));
            else progress.add(length);
            wake?.();
          });
        } catch (err) {
          inFlight -= 1;
          watchdog.completed();
          fail(mapSftpError(err, context));
        }
      }
      position += bytesRead;
    }
    await waitForRoom(0);
    throwIfFailed();
    progress.finish();
    return { sizeBytes: position, sha256: hash.digest('hex') };
  } finally {
    watchdog.stop();
    unsubscribe();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function abortedError(context: { op: string; path: string; host: string }): SyncError {
  return new SyncError(
    'E_ABORTED',
    `${context.op} to ${context.path} was stopped (on ${context.host})`,
    context,
  );
}
