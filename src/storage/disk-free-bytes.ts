import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import checkDiskSpaceModule from 'check-disk-space';
import { toSyncError } from '../errors/index.js';

interface DiskSpace {
  diskPath: string;
  free: number;
  size: number;
}

/**
 * check-disk-space ships CommonJS-shaped types: under NodeNext its default import
 * types as "not callable" although at run time (ESM build) it is the function. The
 * one cast of the project lives here.
 */
const checkDiskSpace = checkDiskSpaceModule as unknown as (directoryPath: string) => Promise<DiskSpace>;

/**
 * Bytes available to this user on the file system holding `path` (`df`'s
 * "Available", which leaves out the blocks reserved for root). A path that does not
 * exist yet, such as a folder about to be created, is measured at its nearest
 * existing parent.
 */
export async function diskFreeBytes(path: string): Promise<number> {
  const existing = await nearestExistingPath(path);
  try {
    const { free } = await checkDiskSpace(existing);
    return free;
  } catch (err) {
    throw toSyncError(err, { op: 'freeSpace', path: existing });
  }
}

async function nearestExistingPath(path: string): Promise<string> {
  let current = path;
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch (err) {
      const parent = dirname(current);
      const code = (err as { code?: unknown }).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current)
        throw toSyncError(err, { op: 'freeSpace', path });
      current = parent;
    }
  }
}
