import { link, lstat, rename, unlink } from 'node:fs/promises';
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
export async function renameLocal(fromPath: string, toPath: string, overwrite: boolean): Promise<void> {
  const op = 'rename';
  const context = { op, path: fromPath, dstPath: toPath };
  try {
    if (overwrite) {
      await rename(fromPath, toPath);
      return;
    }
    const source = await lstat(fromPath);
    if (!source.isDirectory()) {
      try {
        await link(fromPath, toPath);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string' || !NO_HARD_LINKS.has(code)) throw err;
        await renameIfAbsent(fromPath, toPath);
        return;
      }
      try {
        await unlink(fromPath);
      } catch (err) {
        // Leave things as they were: one name, not two.
        await unlink(toPath).catch(() => undefined);
        throw err;
      }
      return;
    }
    await renameIfAbsent(fromPath, toPath);
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

async function renameIfAbsent(fromPath: string, toPath: string): Promise<void> {
  const existing = await lstat(toPath).catch(() => undefined);
  if (existing) throw Object.assign(new Error(`target exists: ${toPath}`), { code: 'EEXIST' });
  await rename(fromPath, toPath);
}
