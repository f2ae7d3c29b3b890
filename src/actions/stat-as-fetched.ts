import { SyncError } from '../errors/index.js';
import type { Storage, StorageStat } from '../storage/storage.js';

/**
 * The size and mtime of a remote path as the fetcher saw it: a link by what it points
 * at (a followed link is fetched as its target). Undefined for a link whose target is
 * gone — nothing is left there to lose, e.g. its target was fetched and deleted first.
 * Rejects with E_NOT_FOUND when the path itself is gone.
 */
export async function statAsFetched(storage: Storage, path: string): Promise<StorageStat | undefined> {
  try {
    return await storage.stat(path);
  } catch (err) {
    if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND')) throw err;
    const itself = await storage.stat(path, { followLinks: false });
    if (itself.type === 'link') return undefined;
    throw err;
  }
}
