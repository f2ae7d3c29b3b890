import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SyncError, toSyncError } from '../errors/index.js';
import type { OpenReadOptions } from './storage.js';

const CHUNK_BYTES = 256 * 1024;

/**
 * A Readable of a local file from `startOffset`. The file is opened before this
 * resolves, so a missing file rejects here; read errors later arrive as SyncErrors.
 */
export async function openLocalReadStream(path: string, options: OpenReadOptions): Promise<Readable> {
  const op = 'openRead';
  let fileHandle: Awaited<ReturnType<typeof open>>;
  try {
    fileHandle = await open(path, 'r');
  } catch (err) {
    throw toSyncError(err, { op, path });
  }
  let position = options.startOffset ?? 0;
  const stream = new Readable({
    highWaterMark: CHUNK_BYTES,
    read(size) {
      const buffer = Buffer.allocUnsafe(Math.max(size, CHUNK_BYTES));
      fileHandle.read(buffer, 0, buffer.length, position).then(
        ({ bytesRead }) => {
          position += bytesRead;
          this.push(bytesRead === 0 ? null : buffer.subarray(0, bytesRead));
        },
        (err: unknown) => this.destroy(toSyncError(err, { op, path })),
      );
    },
    destroy(err, callback) {
      options.signal?.removeEventListener('abort', onAbort);
      fileHandle.close().then(
        () => callback(err),
        () => callback(err),
      );
    },
  });
  const onAbort = (): void => {
    stream.destroy(new SyncError('E_ABORTED', `reading ${path} was stopped`, { op, path }));
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  return stream;
}
