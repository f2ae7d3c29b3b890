import { createHash } from 'node:crypto';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { SyncError, toSyncError } from '../errors/index.js';
import { writeAllAt } from './write-all.js';

/**
 * Where a download's bytes go: a local file, written in order, with the sha256 of
 * exactly those bytes computed on the way. Two kinds: on the main thread (below)
 * and on a worker thread (HashWriteWorker), for big files whose hashing would
 * otherwise compete with the network code for the one JavaScript thread.
 */
export interface HashingFileSink {
  /** Appends `chunk`. The sink owns it from now on (it may move to another thread). */
  write(chunk: Buffer): Promise<void>;
  /** Writes what is queued, sets the mtime and fsyncs when asked, closes the file. */
  finish(options: SinkFinishOptions): Promise<{ sizeBytes: number; sha256: string }>;
  /** Closes and removes the file; never throws. */
  abort(): Promise<void>;
}

export interface SinkFinishOptions {
  fsync: boolean;
  /** Modification time to give the file before it is synced. */
  mtimeMs?: number;
}

export interface FileSinkOptions {
  localPath: string;
  /** Exact permission bits (applied past the umask); the umask decides when undefined. */
  fileMode?: number;
  /** Names the operation in errors. */
  op: string;
  /**
   * Called with each chunk once nothing refers to it any more, so its memory can serve
   * again. `moved`: the memory went to another thread and came back, as a new
   * ArrayBuffer that nothing else shares.
   */
  onChunkFree?: (chunk: Buffer, moved: boolean) => void;
  /**
   * The file will be synced at the end: start writing it back to disk while it is still
   * being written (a sink for big files may), so the final sync finds little left to do.
   */
  syncAtEnd?: boolean;
}

/** Bytes gathered before one `writev`: fewer, larger system calls. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Bytes queued for the disk before `write` waits: a slow disk must not fill memory. */
export const MAX_QUEUED_WRITE_BYTES = 8 * 1024 * 1024;

/** A sink that hashes on the calling thread and writes through libuv's thread pool, overlapping the caller. */
export async function openInlineSink(options: FileSinkOptions): Promise<HashingFileSink> {
  const { localPath, op } = options;
  let fileHandle: FileHandle;
  try {
    fileHandle = await open(localPath, 'w', options.fileMode ?? 0o666);
    if (options.fileMode !== undefined) await fileHandle.chmod(options.fileMode);
  } catch (err) {
    throw toSyncError(err, { op, path: localPath });
  }
  const hash = createHash('sha256');
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let position = 0;
  let queuedBytes = 0;
  let chain: Promise<void> = Promise.resolve();
  // A holder, not a plain variable: the write callbacks set it and TypeScript does not see that.
  const state: { failure: SyncError | undefined; closed: boolean } = { failure: undefined, closed: false };
  const throwIfFailed = (): void => {
    const failure = state.failure;
    if (failure) throw failure;
  };

  const flush = (): void => {
    if (batch.length === 0) return;
    const buffers = batch;
    const bytes = batchBytes;
    const at = position;
    batch = [];
    batchBytes = 0;
    position += bytes;
    queuedBytes += bytes;
    chain = chain.then(async () => {
      if (state.failure) return;
      try {
        await writeAllAt(fileHandle, buffers, at);
        for (const buffer of buffers) options.onChunkFree?.(buffer, false);
      } catch (err) {
        state.failure = toSyncError(err, { op, path: localPath });
      } finally {
        queuedBytes -= bytes;
      }
    });
  };

  return {
    async write(chunk) {
      throwIfFailed();
      hash.update(chunk);
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH_BYTES) flush();
      if (queuedBytes > MAX_QUEUED_WRITE_BYTES) await chain;
      throwIfFailed();
    },
    async finish({ fsync, mtimeMs }) {
      flush();
      await chain;
      throwIfFailed();
      try {
        if (mtimeMs !== undefined) await fileHandle.utimes(new Date(), new Date(mtimeMs));
        if (fsync) await fileHandle.sync();
        state.closed = true;
        await fileHandle.close();
      } catch (err) {
        throw toSyncError(err, { op, path: localPath });
      }
      return { sizeBytes: position, sha256: hash.digest('hex') };
    },
    async abort() {
      state.failure ??= new SyncError('E_ABORTED', `${op} to ${localPath} was stopped`, {
        op,
        path: localPath,
      });
      await chain;
      if (!state.closed) await fileHandle.close().catch(() => undefined);
      state.closed = true;
      await rm(localPath, { force: true }).catch(() => undefined);
    },
  };
}
