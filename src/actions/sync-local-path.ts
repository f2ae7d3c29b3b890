import { open } from 'node:fs/promises';
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

async function fsyncPath(path: string, op: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    await handle.sync();
  } catch (err) {
    throw toSyncError(err, { op, path });
  } finally {
    await handle?.close();
  }
}
