import { createHash } from 'node:crypto';
import { type FileHandle, open, rm, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { SyncError, toSyncError } from '../errors/index.js';
import { createProgressReporter } from './progress-reporter.js';
import type { TransferOptions, TransferResult } from './storage.js';
import { writeAllAt } from './write-all.js';

const BUFFER_BYTES = 1024 * 1024;

/**
 * Copies one local file to another, hashing the bytes as they stream. `dstPath` is
 * created or truncated (callers pass a temporary name) and removed again on
 * failure. Reading and writing overlap: the next block is read while the previous
 * one is written. A source whose size differs from its size at open is E_CHANGED.
 */
export async function copyLocalFile(
  srcPath: string,
  dstPath: string,
  options: TransferOptions,
  op: string,
): Promise<TransferResult> {
  const startedAt = performance.now();
  throwIfAborted(options.signal, op, srcPath);
  let src: FileHandle | undefined;
  let dst: FileHandle | undefined;
  let dstCreated = false;
  let failedPath = srcPath;
  try {
    src = await open(srcPath, 'r');
    const sizeBytes = (await src.stat()).size;
    failedPath = dstPath;
    dst = await open(dstPath, 'w', options.fileMode ?? 0o666);
    dstCreated = true;
    // open() applied the umask; the caller asked for these bits exactly.
    if (options.fileMode !== undefined) await dst.chmod(options.fileMode);

    const hash = createHash('sha256');
    const progress = createProgressReporter(options.onProgress, sizeBytes);
    const buffers = [Buffer.allocUnsafe(BUFFER_BYTES), Buffer.allocUnsafe(BUFFER_BYTES)];
    let position = 0;
    let writing: Promise<void> = Promise.resolve();
    for (let turn = 0; ; turn += 1) {
      throwIfAborted(options.signal, op, srcPath);
      const buffer = buffers[turn % 2] as Buffer;
      failedPath = srcPath;
      const { bytesRead } = await src.read(buffer, 0, buffer.length, position);
      failedPath = dstPath;
      // The buffer about to be refilled must be on disk first.
      await writing;
      if (bytesRead === 0) break;
      const data = buffer.subarray(0, bytesRead);
      hash.update(data);
      writing = writeAllAt(dst, [data], position);
      writing.catch(() => undefined);
      position += bytesRead;
      progress.add(bytesRead);
    }
    if (position !== sizeBytes) {
      throw new SyncError(
        'E_CHANGED',
        `${op} failed: ${srcPath} changed while it was read (${sizeBytes} bytes at open, ${position} read)`,
        { op, path: srcPath, dstPath, hint: 'the file is still being written; it is copied again later' },
      );
    }
    progress.finish();
    if (options.mtimeMs !== undefined) await dst.utimes(new Date(), new Date(options.mtimeMs));
    if (options.fsync) await dst.sync();
    await dst.close();
    dst = undefined;
    let sourceAfter: { sizeBytes: number; mtimeMs: number } | undefined;
    if (options.statSourceAfter) {
      failedPath = srcPath;
      const after = await stat(srcPath);
      sourceAfter = { sizeBytes: after.size, mtimeMs: after.mtimeMs };
    }
    return {
      sizeBytes: position,
      sha256: hash.digest('hex'),
      durationMs: Math.round(performance.now() - startedAt),
      synced: options.fsync === true,
      mtimeSet: options.mtimeMs !== undefined,
      ...(sourceAfter ? { sourceAfter } : {}),
    };
  } catch (err) {
    if (dst) await dst.close().catch(() => undefined);
    if (dstCreated) await rm(dstPath, { force: true }).catch(() => undefined);
    throw err instanceof SyncError ? err : toSyncError(err, { op, path: failedPath });
  } finally {
    await src?.close().catch(() => undefined);
  }
}

function throwIfAborted(signal: AbortSignal | undefined, op: string, path: string): void {
  if (signal?.aborted) throw new SyncError('E_ABORTED', `${op} of ${path} was stopped`, { op, path });
}
