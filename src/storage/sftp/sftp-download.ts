import { createHash } from 'node:crypto';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { SyncError, toSyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { createProgressReporter } from '../progress-reporter.js';
import type { TransferOptions, TransferResult } from '../storage.js';
import { writeAllAt } from '../write-all.js';
import { PipelinedReader } from './pipelined-reader.js';
import { closeHandle, fstatHandle, openFile, statPath } from './sftp-requests.js';
import type { SftpSession } from './sftp-session.js';

export interface SftpDownloadSettings {
  chunkSizeBytes: number;
  readConcurrency: number;
  /** Idle deadline: no data for this long fails the transfer. */
  operationTimeoutMs: number;
  log: Logger;
}

/** Bytes gathered before one `writev` to the local file: fewer, larger system calls. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Bytes queued for the local disk before reading waits for it: a slow disk must not fill memory. */
const MAX_QUEUED_WRITE_BYTES = 16 * 1024 * 1024;

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
  let fileHandle: FileHandle | undefined;
  let reader: PipelinedReader | undefined;
  const onAbort = (): void => reader?.fail(abortedError(context));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const sizeBytes = await remoteSize(session, op, remotePath, handle);
    try {
      fileHandle = await open(localPath, 'w', options.fileMode ?? 0o666);
      // The umask trimmed the mode given to open(); the caller asked for these bits exactly.
      if (options.fileMode !== undefined) await fileHandle.chmod(options.fileMode);
    } catch (err) {
      throw toSyncError(err, { op, path: localPath });
    }
    reader = new PipelinedReader({
      session,
      handle,
      remotePath,
      op,
      startOffset: 0,
      sizeBytes,
      chunkBytes: Math.max(1, Math.min(settings.chunkSizeBytes, session.maxReadBytes)),
      maxInFlight: Math.max(1, settings.readConcurrency),
      idleTimeoutMs: settings.operationTimeoutMs,
      log: settings.log,
    });
    throwIfAborted(options.signal, context);

    const hash = createHash('sha256');
    const progress = createProgressReporter(options.onProgress, sizeBytes ?? 0);
    const writer = createOrderedWriter(fileHandle, localPath);
    for (;;) {
      const chunk = await reader.next();
      if (!chunk) break;
      hash.update(chunk);
      progress.add(chunk.length);
      await writer.push(chunk);
    }
    await writer.finish();
    progress.finish();
    if (options.fsync) await syncLocal(fileHandle, localPath, op);
    await closeLocal(fileHandle, localPath, op);
    fileHandle = undefined;
    // The bytes are safe; a close that fails or times out changes nothing about them.
    await closeHandle(session, op, remotePath, handle).catch((err: unknown) =>
      settings.log.debug({ ...context, err }, 'closing the remote file after download failed'),
    );
    return {
      sizeBytes: writer.bytesWritten,
      sha256: hash.digest('hex'),
      durationMs: Math.round(performance.now() - startedAt),
    };
  } catch (err) {
    reader?.fail(err instanceof SyncError ? err : abortedError(context));
    if (fileHandle) await fileHandle.close().catch(() => undefined);
    await rm(localPath, { force: true }).catch(() => undefined);
    if (!session.broken) await closeHandle(session, op, remotePath, handle).catch(() => undefined);
    throw err instanceof SyncError ? err : toSyncError(err, context);
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

interface OrderedWriter {
  /** Queues `chunk` after everything queued before; waits only when too much is queued. */
  push(chunk: Buffer): Promise<void>;
  /** Writes what is left and waits for every write. */
  finish(): Promise<void>;
  readonly bytesWritten: number;
}

/**
 * Sequential, batched writes to the local file that overlap with the network
 * reads: reading goes on while the previous batch is being written.
 */
function createOrderedWriter(fileHandle: FileHandle, localPath: string): OrderedWriter {
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let position = 0;
  let queuedBytes = 0;
  let bytesWritten = 0;
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown;

  function flush(): void {
    if (batch.length === 0) return;
    const buffers = batch;
    const bytes = batchBytes;
    const at = position;
    batch = [];
    batchBytes = 0;
    position += bytes;
    queuedBytes += bytes;
    chain = chain.then(async () => {
      if (failure) return;
      try {
        await writeAllAt(fileHandle, buffers, at);
        bytesWritten += bytes;
      } catch (err) {
        failure = toSyncError(err, { op: 'download', path: localPath });
      } finally {
        queuedBytes -= bytes;
      }
    });
  }

  return {
    async push(chunk) {
      if (failure) throw failure;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH_BYTES) flush();
      if (queuedBytes > MAX_QUEUED_WRITE_BYTES) await chain;
      if (failure) throw failure;
    },
    async finish() {
      flush();
      await chain;
      if (failure) throw failure;
    },
    get bytesWritten() {
      return bytesWritten;
    },
  };
}

async function syncLocal(fileHandle: FileHandle, localPath: string, op: string): Promise<void> {
  try {
    await fileHandle.sync();
  } catch (err) {
    throw toSyncError(err, { op, path: localPath });
  }
}

async function closeLocal(fileHandle: FileHandle, localPath: string, op: string): Promise<void> {
  try {
    await fileHandle.close();
  } catch (err) {
    throw toSyncError(err, { op, path: localPath });
  }
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
