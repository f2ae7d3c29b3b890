import { linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import { SyncError, toSyncError } from '../errors/index.js';

/** File systems that cannot hard-link answer with one of these; renaming then needs a check first. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/**
 * rename(2) replaces an existing target silently. With `overwrite: false` a file is
 * hard-linked to the new name (link fails with EEXIST when the name is taken, so
 * there is no check-then-rename race) and the old name then removed. Folders, and
 * file systems without hard links, fall back to check-then-rename, which a
 * concurrent writer could race.
 */
export function renameLocal(fromPath: string, toPath: string, overwrite: boolean): Promise<void> {
  try {
    renameLocalSync(fromPath, toPath, overwrite);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(toSyncError(err, { op: 'rename', path: fromPath, dstPath: toPath }));
  }
}

/**
 * The same as direct system calls: a rename or a link within a local folder takes
 * microseconds, a trip through libuv's thread pool several times that (see
 * createLocalStorage). Throws a SyncError.
 */
function renameLocalSync(fromPath: string, toPath: string, overwrite: boolean): void {
  const op = 'rename';
  const context = { op, path: fromPath, dstPath: toPath };
  try {
    if (overwrite) {
      renameSync(fromPath, toPath);
      return;
    }
    try {
      linkSync(fromPath, toPath);
    } catch (err) {
      // A folder cannot be hard-linked (EPERM), nor can anything on some file systems.
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'string' || !NO_HARD_LINKS.has(code)) throw err;
      renameIfAbsent(fromPath, toPath);
      return;
    }
    try {
      unlinkSync(fromPath);
    } catch (err) {
      // Leave things as they were: one name, not two.
      try {
        unlinkSync(toPath);
      } catch {
        // The first failure is the one to report.
      }
      throw err;
    }
  } catch (err) {
    const mapped = toSyncError(err, context);
    if (mapped.code === 'E_EXISTS' && mapped.context.errno === 'EEXIST') {
      throw new SyncError('E_EXISTS', `rename failed: the target already exists (${fromPath} → ${toPath})`, {
        ...context,
        hint: 'remove the target or allow overwriting',
        cause: err,
      });
    }
    throw mapped;
  }
}

function renameIfAbsent(fromPath: string, toPath: string): void {
  if (lstatSync(toPath, { throwIfNoEntry: false }))
    throw Object.assign(new Error(`target exists: ${toPath}`), { code: 'EEXIST' });
  renameSync(fromPath, toPath);
}
