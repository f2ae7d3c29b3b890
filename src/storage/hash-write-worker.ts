import { Worker } from 'node:worker_threads';
import { SyncError, toSyncError } from '../errors/index.js';
import { type FileSinkOptions, type HashingFileSink, MAX_QUEUED_WRITE_BYTES } from './hashing-file-sink.js';

/** With `syncAtEnd`, the worker starts writing a file back to disk each time this much more was written. */
const EARLY_SYNC_BYTES = 32 * 1024 * 1024;

/**
 * The worker's code, as plain CommonJS evaluated in the thread: a file next to this
 * one would need a different path under tsx, vitest and the compiled build. It
 * writes each job's chunks in order with positional writes, hashes them, and hands
 * every chunk's memory back for reuse.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const EARLY_SYNC_BYTES = ${EARLY_SYNC_BYTES};
const jobs = new Map();
// A file that is synced at the end is also written back while it grows: one fdatasync at a
// time on the thread pool (this thread keeps writing), so the final fsync finds the disk
// nearly caught up instead of starting on the whole file. A failed one fails the job: after
// a failed fsync the kernel may drop the pages, and a later fsync would not say so.
function earlySync(job) {
  if (!job.syncEarly || job.syncing || job.position - job.syncedTo < EARLY_SYNC_BYTES) return;
  job.syncing = true;
  const upTo = job.position;
  fs.fdatasync(job.fd, (err) => {
    job.syncing = false;
    if (err) job.syncError = job.syncError || err;
    else job.syncedTo = upTo;
    const next = job.afterSync;
    job.afterSync = undefined;
    if (next) next();
  });
}
function whenNotSyncing(job, fn) {
  if (job.syncing) job.afterSync = fn;
  else fn();
}
function closeQuietly(fd) {
  try { fs.closeSync(fd); } catch {}
}
function finish(msg, job) {
  try {
    if (job.syncError) throw job.syncError;
    if (msg.mtimeMs !== undefined) fs.futimesSync(job.fd, new Date(), new Date(msg.mtimeMs));
    if (msg.fsync) fs.fsyncSync(job.fd);
    jobs.delete(msg.job);
    fs.closeSync(job.fd);
    parentPort.postMessage({ type: 'done', job: msg.job, sizeBytes: job.position, sha256: job.hash.digest('hex') });
  } catch (err) {
    jobs.delete(msg.job);
    closeQuietly(job.fd);
    parentPort.postMessage({ type: 'error', job: msg.job, code: err && err.code, message: String(err && err.message) });
  }
}
parentPort.on('message', (msg) => {
  const job = jobs.get(msg.job);
  try {
    if (msg.type === 'open') {
      const fd = fs.openSync(msg.path, 'w', msg.mode === undefined ? 0o666 : msg.mode);
      jobs.set(msg.job, { fd, hash: createHash('sha256'), position: 0, failed: false, syncEarly: msg.syncEarly, syncedTo: 0, syncing: false });
      if (msg.mode !== undefined) fs.fchmodSync(fd, msg.mode);
      parentPort.postMessage({ type: 'opened', job: msg.job });
    } else if (msg.type === 'finish') {
      whenNotSyncing(job, () => finish(msg, job));
      return;
    } else if (msg.type === 'abort') {
      const end = () => {
        if (job) {
          jobs.delete(msg.job);
          closeQuietly(job.fd);
        }
        try { fs.rmSync(msg.path, { force: true }); } catch {}
        parentPort.postMessage({ type: 'aborted', job: msg.job });
      };
      // Never close a descriptor the pool may still be syncing: the number could be reused meanwhile.
      if (job) whenNotSyncing(job, end);
      else end();
      return;
    } else if (msg.type === 'data') {
      if (!job || job.failed) return;
      const views = msg.buffers.map((buffer, index) => Buffer.from(buffer, 0, msg.lengths[index]));
      let total = 0;
      for (const view of views) {
        job.hash.update(view);
        total += view.length;
      }
      let written = fs.writevSync(job.fd, views, job.position);
      while (written < total) {
        let skip = written;
        let index = 0;
        while (skip >= views[index].length) skip -= views[index++].length;
        const more = fs.writeSync(job.fd, views[index], skip, views[index].length - skip, job.position + written);
        if (more === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
        written += more;
      }
      job.position += total;
      parentPort.postMessage({ type: 'written', job: msg.job, bytes: total, buffers: msg.buffers }, msg.buffers);
      earlySync(job);
    }
  } catch (err) {
    if (job) job.failed = true;
    if (msg.type === 'open') {
      const opened = jobs.get(msg.job);
      if (opened) { jobs.delete(msg.job); closeQuietly(opened.fd); }
    }
    parentPort.postMessage({ type: 'error', job: msg.job, code: err && err.code, message: String(err && err.message) });
  }
});
`;

/** Chunks sent to the worker in one message: one message and one `writev` per MiB, not per chunk. */
const MESSAGE_BATCH_BYTES = 1024 * 1024;

type WorkerReply =
  | { type: 'opened'; job: number }
  | { type: 'written'; job: number; bytes: number; buffers: ArrayBuffer[] }
  | { type: 'done'; job: number; sizeBytes: number; sha256: string }
  | { type: 'aborted'; job: number }
  | { type: 'error'; job: number; code?: string; message: string };

interface Job {
  onReply(reply: WorkerReply): void;
  onWorkerLost(err: SyncError): void;
}

/**
 * One worker thread that writes and hashes downloads, so the thread running ssh2
 * spends its time on the network. Started on first use, shared by the downloads of
 * one storage, ended by `close`. A chunk's memory moves to the worker and back
 * (transferred, not copied) when the chunk owns all of it.
 */
export class HashWriteWorker {
  #worker: Worker | undefined;
  readonly #jobs = new Map<number, Job>();
  #nextJob = 1;

  async open(options: FileSinkOptions): Promise<HashingFileSink> {
    const worker = this.ensureWorker();
    const jobId = this.#nextJob++;
    // Referenced while it has work: a caller waiting only on the worker must not see the program exit.
    worker.ref();
    const { localPath, op } = options;
    const context = { op, path: localPath };
    let queuedBytes = 0;
    // A holder, not a plain variable: the worker's replies set it and TypeScript does not see that.
    const state: { failure: SyncError | undefined } = { failure: undefined };
    const throwIfFailed = (): void => {
      const failure = state.failure;
      if (failure) throw failure;
    };
    let opened: { resolve: () => void; reject: (err: SyncError) => void } | undefined;
    let drained: (() => void) | undefined;
    let done:
      | { resolve: (value: { sizeBytes: number; sha256: string }) => void; reject: (err: SyncError) => void }
      | undefined;
    let aborted: (() => void) | undefined;

    const fail = (err: SyncError): void => {
      state.failure ??= err;
      opened?.reject(err);
      done?.reject(err);
      drained?.();
      aborted?.();
    };
    this.#jobs.set(jobId, {
      onReply: (reply) => {
        switch (reply.type) {
          case 'opened':
            opened?.resolve();
            return;
          case 'written':
            queuedBytes -= reply.bytes;
            if (queuedBytes <= MAX_QUEUED_WRITE_BYTES / 2) drained?.();
            for (const buffer of reply.buffers) options.onChunkFree?.(Buffer.from(buffer), true);
            return;
          case 'done':
            this.finishJob(jobId);
            done?.resolve({ sizeBytes: reply.sizeBytes, sha256: reply.sha256 });
            return;
          case 'aborted':
            this.finishJob(jobId);
            aborted?.();
            return;
          case 'error':
            fail(toSyncError(Object.assign(new Error(reply.message), { code: reply.code }), context));
            return;
        }
      },
      onWorkerLost: fail,
    });

    await new Promise<void>((resolve, reject) => {
      opened = { resolve, reject };
      worker.postMessage({
        type: 'open',
        job: jobId,
        path: localPath,
        mode: options.fileMode,
        syncEarly: options.syncAtEnd === true,
      });
    }).catch((err: unknown) => {
      this.finishJob(jobId);
      throw err;
    });

    let batch: ArrayBuffer[] = [];
    let lengths: number[] = [];
    let batchBytes = 0;
    const sendBatch = (): void => {
      if (batch.length === 0) return;
      worker.postMessage({ type: 'data', job: jobId, buffers: batch, lengths }, batch);
      batch = [];
      lengths = [];
      batchBytes = 0;
    };

    return {
      write: async (chunk) => {
        throwIfFailed();
        // Only memory the chunk owns alone may move to the other thread; a view into shared memory is copied.
        const owned =
          chunk.byteOffset === 0 &&
          chunk.buffer.byteLength === chunk.length &&
          chunk.buffer instanceof ArrayBuffer
            ? chunk.buffer
            : Uint8Array.prototype.slice.call(chunk).buffer;
        batch.push(owned);
        lengths.push(chunk.length);
        batchBytes += chunk.length;
        queuedBytes += chunk.length;
        if (batchBytes >= MESSAGE_BATCH_BYTES) sendBatch();
        if (queuedBytes > MAX_QUEUED_WRITE_BYTES) {
          sendBatch();
          await new Promise<void>((resolve) => {
            drained = resolve;
          });
          drained = undefined;
        }
        throwIfFailed();
      },
      finish: ({ fsync, mtimeMs }) =>
        new Promise((resolve, reject) => {
          if (state.failure) return reject(state.failure);
          done = { resolve, reject };
          sendBatch();
          worker.postMessage({ type: 'finish', job: jobId, fsync, mtimeMs });
        }),
      abort: () =>
        new Promise<void>((resolve) => {
          state.failure ??= new SyncError('E_ABORTED', `${op} to ${localPath} was stopped`, context);
          if (!this.#jobs.has(jobId) || !this.#worker) return resolve();
          aborted = resolve;
          worker.postMessage({ type: 'abort', job: jobId, path: localPath });
        }),
    };
  }

  /** Ends the thread; jobs still running fail. */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) await worker.terminate();
  }

  private ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on('message', (reply: WorkerReply) => this.#jobs.get(reply.job)?.onReply(reply));
    const lost = (why: string) => (err?: Error) => {
      if (this.#worker === worker) this.#worker = undefined;
      const failure = new SyncError(
        'E_INTERNAL',
        `the download writer thread ${why}${err ? `: ${err.message}` : ''}`,
        {
          op: 'download',
          hint: 'this is a bug: the debug log has the full trace',
          ...(err ? { cause: err } : {}),
        },
      );
      for (const job of [...this.#jobs.values()]) job.onWorkerLost(failure);
      this.#jobs.clear();
    };
    worker.on('error', lost('failed'));
    worker.on('exit', () => lost('ended')());
    this.#worker = worker;
    return worker;
  }

  private finishJob(jobId: number): void {
    this.#jobs.delete(jobId);
    // An idle worker must not keep the program alive.
    if (this.#jobs.size === 0) this.#worker?.unref();
  }
}
