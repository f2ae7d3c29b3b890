import { posix } from 'node:path';
import { SyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';
import { numberedName } from './numbered-name.js';
import { statAsFetched } from './stat-as-fetched.js';

export interface MoveFileInput {
  storage: Storage;
  fromPath: string;
  toPath: string;
  /**
   * When given, the file is moved only if it still has this size and mtime. A link is
   * compared by what it points at, as it was fetched (a link whose target is gone is
   * moved); the link itself is what moves.
   */
  expected?: { sizeBytes: number; mtimeMs: number };
  dirMode?: number;
}

export type MoveFileResult = { outcome: 'moved'; toPath: string } | { outcome: 'already-gone' | 'changed' };

const MAX_NUMBERED_NAMES = 1000;

/**
 * Moves a file within one storage, creating the target folder, never overwriting: an
 * existing name gets a number (`report (1).csv`). A source that is gone is not an
 * error; one that changed since it was fetched is left where it is.
 */
export async function moveFile(input: MoveFileInput): Promise<MoveFileResult> {
  const { storage, fromPath, toPath } = input;
  try {
    if (input.expected) {
      const now = await statAsFetched(storage, fromPath);
      if (now && (now.sizeBytes !== input.expected.sizeBytes || now.mtimeMs !== input.expected.mtimeMs))
        return { outcome: 'changed' };
    }
    await storage.mkdirp(posix.dirname(toPath), input.dirMode === undefined ? {} : { mode: input.dirMode });
    for (let n = 0; n <= MAX_NUMBERED_NAMES; n += 1) {
      const candidate = n === 0 ? toPath : numberedName(toPath, n);
      try {
        await storage.rename(fromPath, candidate, { overwrite: false });
        return { outcome: 'moved', toPath: candidate };
      } catch (err) {
        if (!(err instanceof SyncError && err.code === 'E_EXISTS')) throw err;
      }
    }
  } catch (err) {
    if (err instanceof SyncError && err.code === 'E_NOT_FOUND') {
      // Gone, or was it the target folder that could not be made? Only a missing source is "already gone".
      const stillThere = await storage.stat(fromPath, { followLinks: false }).then(
        () => true,
        () => false,
      );
      if (!stillThere) return { outcome: 'already-gone' };
    }
    throw err;
  }
  throw new SyncError('E_EXISTS', `no free name for ${toPath} after ${MAX_NUMBERED_NAMES} tries`, {
    op: 'move',
    path: fromPath,
    dstPath: toPath,
    host: storage.label,
    hint: 'clean up the numbered copies in that folder',
  });
}
