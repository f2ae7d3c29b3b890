import { performance } from 'node:perf_hooks';
import type { Stats } from 'ssh2';
import { SyncError, toSyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { HashWriteWorker } from '../hash-write-worker.js';
import { type HashingFileSink, openInlineSink } from '../hashing-file-sink.js';
import { createProgressReporter } from '../progress-reporter.js';
import { openSmallFileSink, SMALL_FILE_MAX_BYTES } from '../small-file-sink.js';
import type { TransferOptions, TransferResult } from '../storage.js';
import type { BufferPools } from './buffer-pool.js';
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
  /** Read buffers shared by the downloads of one storage. */
  readBuffers?: BufferPools;
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
  // Cleared once CLOSE is sent: a server reuses handle names, so a second CLOSE could end another transfer's file.
  let openHandle: Buffer | undefined = handle;
  let sink: HashingFileSink | undefined;
  let reader: PipelinedReader | undefined;
  const onAbort = (): void => reader?.fail(abortedError(context));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const sizeBytes = options.expectedSizeBytes ?? (await remoteSize(session, op, remotePath, handle));
    const chunkBytes = Math.max(1, Math.min(settings.chunkSizeBytes, session.maxReadBytes));
    const sinkOptions = {
      localPath,
      op,
      ...(options.fileMode === undefined ? {} : { fileMode: options.fileMode }),
      onChunkFree: (chunk: Buffer, moved: boolean) => reader?.recycle(chunk, moved),
      syncAtEnd: options.fsync === true,
    };
    sink =
      settings.hashWriteWorker && sizeBytes !== undefined && sizeBytes >= WORKER_MIN_BYTES
        ? await settings.hashWriteWorker.open(sinkOptions)
        : sizeBytes !== undefined && sizeBytes <= SMALL_FILE_MAX_BYTES
          ? openSmallFileSink(sinkOptions)
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
      ...(settings.readBuffers ? { buffers: settings.readBuffers.of(chunkBytes) } : {}),
      idleTimeoutMs: settings.operationTimeoutMs,
      log: settings.log,
      // The stat after the reads tells a file that grew, one request fewer than the probe.
      probeEnd: options.statSourceAfter !== true,
    });
    throwIfAborted(options.signal, context);

    const progress = createProgressReporter(options.onProgress, sizeBytes ?? 0);
    for (;;) {
      const chunk = await reader.next();
      if (!chunk) break;
      progress.add(chunk.length);
      await sink.write(chunk);
    }
    // Every byte is read: the remote side is done. CLOSE (and the stat of the source, after
    // the reads on the server) go out together while the local file is finished and synced.
    openHandle = undefined;
    // The bytes are safe; a close that fails or times out changes nothing about them.
    const closed = closeHandle(session, op, remotePath, handle).catch((err: unknown) =>
      settings.log.debug({ ...context, err }, 'closing the remote file after download failed'),
    );
    const statAfter = options.statSourceAfter ? statPath(session, op, remotePath) : undefined;
    statAfter?.catch(() => undefined);
    const { sizeBytes: writtenBytes, sha256 } = await sink.finish({
      fsync: options.fsync === true,
      ...(options.mtimeMs === undefined ? {} : { mtimeMs: options.mtimeMs }),
    });
    sink = undefined;
    progress.finish();
    const sourceAfter = statAfter ? toSizeAndMtime(await statAfter) : undefined;
    await closed;
    return {
      sizeBytes: writtenBytes,
      sha256,
      durationMs: Math.round(performance.now() - startedAt),
      synced: options.fsync === true,
      mtimeSet: options.mtimeMs !== undefined,
      ...(sourceAfter ? { sourceAfter } : {}),
    };
  } catch (err) {
    reader?.fail(err instanceof SyncError ? err : abortedError(context));
    await sink?.abort();
    if (openHandle && !session.broken)
      await closeHandle(session, op, remotePath, openHandle).catch(() => undefined);
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

/** SFTP v3 carries whole seconds, like every listing of the same server. */
function toSizeAndMtime(stats: Stats): { sizeBytes: number; mtimeMs: number } {
  return {
    sizeBytes: typeof stats.size === 'number' ? stats.size : 0,
    mtimeMs: typeof stats.mtime === 'number' ? stats.mtime * 1000 : 0,
  };
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
