import { performance } from 'node:perf_hooks';
import { SyncError, toSyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { HashWriteWorker } from '../hash-write-worker.js';
import { type HashingFileSink, openInlineSink } from '../hashing-file-sink.js';
import { createProgressReporter } from '../progress-reporter.js';
import type { TransferOptions, TransferResult } from '../storage.js';
import { PipelinedReader } from './pipelined-reader.js';
import { closeHandle, fstatHandle, openFile, statPath } from './sftp-requests.js';
import type { SftpSession } from './sftp-session.js';

export interface SftpDownloadSettings {
  chunkSizeBytes: number;
  readConcurrency: number;
  /** Idle deadline: no data for this long fails the transfer. */
  operationTimeoutMs: number;
  log: Logger;
  /** Writes and hashes big files off the main thread; small ones are cheaper inline. */
  hashWriteWorker?: HashWriteWorker;
}

/**
 * From this size on a download is written and hashed on the worker thread: below
 * it, starting the job costs more than hashing inline. Measured on loopback
 * (scripts/bench-download.ts), hashing inline took about a sixth of the main
 * thread's time on big files.
 */
const WORKER_MIN_BYTES = 8 * 1024 * 1024;

/**
 * Copies `remotePath` to `localPath` with parallel chunked reads, writing the bytes
 * in order and hashing them as they pass (no second read). `localPath` is created
 * or truncated; on failure it is removed, so a half file never stays behind. No
 * total deadline, but an idle one: no data for `operationTimeoutMs` fails with
 * E_TIMEOUT and destroys the session.
 */
export async function sftpDownload(
  session: SftpSession,
  remotePath: string,
  localPath: string,
  options: TransferOptions,
  settings: SftpDownloadSettings,
): Promise<TransferResult> {
  const op = 'download';
  const startedAt = performance.now();
  const context = { op, path: remotePath, host: session.hostLabel, localPath };
  throwIfAborted(options.signal, context);

  const handle = await openFile(session, op, remotePath, 'r');
  let sink: HashingFileSink | undefined;
  let reader: PipelinedReader | undefined;
  const onAbort = (): void => reader?.fail(abortedError(context));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const sizeBytes = await remoteSize(session, op, remotePath, handle);
    const chunkBytes = Math.max(1, Math.min(settings.chunkSizeBytes, session.maxReadBytes));
    const sinkOptions = {
      localPath,
      op,
      ...(options.fileMode === undefined ? {} : { fileMode: options.fileMode }),
      onChunkFree: (chunk: Buffer) => reader?.recycle(chunk),
    };
    sink =
      settings.hashWriteWorker && sizeBytes !== undefined && sizeBytes >= WORKER_MIN_BYTES
        ? await settings.hashWriteWorker.open(sinkOptions)
        : await openInlineSink(sinkOptions);
    reader = new PipelinedReader({
      session,
      handle,
      remotePath,
      op,
      startOffset: 0,
      sizeBytes,
      chunkBytes,
      maxInFlight: Math.max(1, settings.readConcurrency),
      idleTimeoutMs: settings.operationTimeoutMs,
      log: settings.log,
    });
    throwIfAborted(options.signal, context);

    const progress = createProgressReporter(options.onProgress, sizeBytes ?? 0);
    for (;;) {
      const chunk = await reader.next();
      if (!chunk) break;
      progress.add(chunk.length);
      await sink.write(chunk);
    }
    const { sizeBytes: writtenBytes, sha256 } = await sink.finish(options.fsync === true);
    sink = undefined;
    progress.finish();
    // The bytes are safe; a close that fails or times out changes nothing about them.
    await closeHandle(session, op, remotePath, handle).catch((err: unknown) =>
      settings.log.debug({ ...context, err }, 'closing the remote file after download failed'),
    );
    return { sizeBytes: writtenBytes, sha256, durationMs: Math.round(performance.now() - startedAt) };
  } catch (err) {
    reader?.fail(err instanceof SyncError ? err : abortedError(context));
    await sink?.abort();
    if (!session.broken) await closeHandle(session, op, remotePath, handle).catch(() => undefined);
    // Local-side failures (disk full, missing folder) name the server too: which transfer it was.
    throw err instanceof SyncError ? err.withContext({ host: session.hostLabel }) : toSyncError(err, context);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    reader?.close();
  }
}

/** The size at open, from the handle; by path for servers without FSTAT; undefined when neither says. */
async function remoteSize(
  session: SftpSession,
  op: string,
  remotePath: string,
  handle: Buffer,
): Promise<number | undefined> {
  try {
    const stats = await fstatHandle(session, op, remotePath, handle);
    if (typeof stats.size === 'number') return stats.size;
  } catch (err) {
    if (session.broken) throw err;
  }
  const stats = await statPath(session, op, remotePath);
  return typeof stats.size === 'number' ? stats.size : undefined;
}

function abortedError(context: { op: string; path: string; host: string }): SyncError {
  return new SyncError(
    'E_ABORTED',
    `${context.op} of ${context.path} was stopped (on ${context.host})`,
    context,
  );
}

function throwIfAborted(
  signal: AbortSignal | undefined,
  context: { op: string; path: string; host: string },
) {
  if (signal?.aborted) throw abortedError(context);
}
