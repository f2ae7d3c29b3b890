import { SyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';
import { statAsFetched } from './stat-as-fetched.js';

export interface DeleteFileInput {
  storage: Storage;
  path: string;
  /**
   * When given, the file is deleted only if it still has this size and mtime (it was
   * not replaced meanwhile). A link is compared by what it points at, as it was
   * fetched (a link whose target is gone is deleted); the link itself is what goes.
   */
  expected?: { sizeBytes: number; mtimeMs: number };
}

export type DeleteFileOutcome = 'deleted' | 'already-gone' | 'changed';

/**
 * Deletes one file. A file that is already gone is not an error (a retry after a
 * crash); a file that changed since it was fetched is left alone, because deleting it
 * would lose the partner's new version.
 */
export async function deleteFile(input: DeleteFileInput): Promise<DeleteFileOutcome> {
  try {
    if (input.expected) {
      const now = await statAsFetched(input.storage, input.path);
      if (now && (now.sizeBytes !== input.expected.sizeBytes || now.mtimeMs !== input.expected.mtimeMs))
        return 'changed';
    }
    await input.storage.remove(input.path);
    return 'deleted';
  } catch (err) {
    if (err instanceof SyncError && err.code === 'E_NOT_FOUND') return 'already-gone';
    throw err;
  }
}
