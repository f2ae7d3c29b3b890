import { SyncError } from '../errors/index.js';
import type { Storage, StorageStat } from '../storage/storage.js';

/** `stat` that answers undefined for a missing path instead of rejecting. Links are not followed. */
export async function statIfExists(storage: Storage, path: string): Promise<StorageStat | undefined> {
  try {
    return await storage.stat(path, { followLinks: false });
  } catch (err) {
    if (err instanceof SyncError && err.code === 'E_NOT_FOUND') return undefined;
    throw err;
  }
}
