import type { Storage } from '../storage/storage.js';
import { fsyncParentDir } from './sync-local-path.js';

export interface CommitTemporaryInput {
  storage: Storage;
  tempPath: string;
  targetPath: string;
  /** Replace an existing target atomically; otherwise an existing target rejects with E_EXISTS. */
  overwrite: boolean;
}

/**
 * The moment a file becomes visible under its real name: one rename within a folder,
 * then (on a local disk) a sync of the folder so the new name survives a crash.
 */
export async function commitTemporary(input: CommitTemporaryInput): Promise<void> {
  await input.storage.rename(input.tempPath, input.targetPath, { overwrite: input.overwrite });
  if (input.storage.kind === 'local') await fsyncParentDir(input.targetPath);
}
