import { Readable } from 'node:stream';
import { SyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { OpenReadOptions } from '../storage.js';
import { PipelinedReader } from './pipelined-reader.js';
import { closeHandle, fstatHandle, openFile } from './sftp-requests.js';
import type { SftpSession } from './sftp-session.js';

export interface SftpReadStreamSettings {
  chunkSizeBytes: number;
  readConcurrency: number;
  operationTimeoutMs: number;
  log: Logger;
}

/**
 * A Readable of a remote file from `startOffset`, with reads pipelined and the same
 * checks as a download (short reads re-read, a file that changes size is E_CHANGED).
 * The remote handle is closed, and `release` called, when the stream ends, fails or
 * is destroyed.
 */
export async function openSftpReadStream(
  session: SftpSession,
  remotePath: string,
  options: OpenReadOptions,
  settings: SftpReadStreamSettings,
  release: () => void,
): Promise<Readable> {
  const op = 'openRead';
  const handle = await openFile(session, op, remotePath, 'r');
  let sizeBytes: number | undefined;
  try {
    const stats = await fstatHandle(session, op, remotePath, handle);
    sizeBytes = typeof stats.size === 'number' ? stats.size : undefined;
  } catch (err) {
    await closeHandle(session, op, remotePath, handle).catch(() => undefined);
    throw err;
  }
  const reader = new PipelinedReader({
    session,
    handle,
    remotePath,
    op,
    startOffset: options.startOffset ?? 0,
    sizeBytes,
    chunkBytes: Math.max(1, Math.min(settings.chunkSizeBytes, session.maxReadBytes)),
    maxInFlight: Math.max(1, settings.readConcurrency),
    idleTimeoutMs: settings.operationTimeoutMs,
    log: settings.log,
  });
  const stream = new Readable({
    // The reader holds the read-ahead; the stream itself buffers little.
    highWaterMark: 0,
    read() {
      reader.next().then(
        (chunk) => this.push(chunk),
        (err: unknown) => this.destroy(err as Error),
      );
    },
    destroy(err, callback) {
      reader.close();
      options.signal?.removeEventListener('abort', onAbort);
      const closing = session.broken ? Promise.resolve() : closeHandle(session, op, remotePath, handle);
      closing
        .catch(() => undefined)
        .finally(() => {
          release();
          callback(err);
        });
    },
  });
  const onAbort = (): void => {
    stream.destroy(
      new SyncError('E_ABORTED', `reading ${remotePath} was stopped (on ${session.hostLabel})`, {
        op,
        path: remotePath,
        host: session.hostLabel,
      }),
    );
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  return stream;
}
