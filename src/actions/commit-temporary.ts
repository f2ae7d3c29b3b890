import { dirname } from 'node:path';
import type { Storage } from '../storage/storage.js';
import type { SyncFolder } from './shared-folder-sync.js';
import { fsyncDir } from './sync-local-path.js';

export interface CommitTemporaryInput {
  storage: Storage;
  tempPath: string;
  targetPath: string;
  /** Replace an existing target atomically; otherwise an existing target rejects with E_EXISTS. */
  overwrite: boolean;
  /** How the folder is synced after the rename (local storage): e.g. a sync shared with other commits. */
  syncFolder?: SyncFolder;
}

/**
 * The moment a file becomes visible under its real name: one rename within a folder,
 * then (on a local disk) a sync of the folder so the new name survives a crash.
 */
export async function commitTemporary(input: CommitTemporaryInput): Promise<void> {
  await input.storage.rename(input.tempPath, input.targetPath, { overwrite: input.overwrite });
  if (input.storage.kind === 'local') await (input.syncFolder ?? fsyncDir)(dirname(input.targetPath));
}
