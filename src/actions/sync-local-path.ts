import { closeSync, fsync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { toSyncError } from '../errors/index.js';

/**
 * Flushes a local file's data and metadata to disk. A rename is only durable once the
 * file it names is, so every commit calls this before renaming. Opened read-only:
 * fsync needs no write access, and a copy made with `file_mode: "0444"` has none.
 */
export async function fsyncFile(localPath: string): Promise<void> {
  await fsyncPath(localPath, 'fsync');
}

/** Flushes a local folder's entries, so a rename into it survives a crash of the machine. */
export async function fsyncDir(localDirPath: string): Promise<void> {
  await fsyncPath(localDirPath, 'fsync folder');
}

export async function fsyncParentDir(localPath: string): Promise<void> {
  await fsyncDir(dirname(localPath));
}

/**
 * Open and close are direct system calls (microseconds on a local disk); only the
 * fsync, which waits on the disk, goes to libuv's thread pool: one hand-off, not three.
 */
async function fsyncPath(path: string, op: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const descriptor = fd;
    await new Promise<void>((resolve, reject) => fsync(descriptor, (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    throw toSyncError(err, { op, path });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
