import { SyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';

export type RemoveFolderOutcome = 'removed' | 'already-gone' | 'not-empty';

/**
 * Removes one empty folder. A folder already gone is not an error; one that is not
 * empty (something was written into it meanwhile) is left alone and reported.
 */
export async function removeFolder(storage: Storage, path: string): Promise<RemoveFolderOutcome> {
  try {
    await storage.removeDir(path);
    return 'removed';
  } catch (err) {
    if (err instanceof SyncError && err.code === 'E_NOT_FOUND') return 'already-gone';
    if (err instanceof SyncError && err.code === 'E_EXISTS') return 'not-empty';
    throw err;
  }
}
