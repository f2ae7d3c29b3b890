import { symlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { SyncError, toSyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';
import { commitTemporary } from './commit-temporary.js';
import { temporaryPathFor } from './temporary-name.js';

export interface CopyLinkInput {
  /** The local storage the link is made on. */
  dst: Storage;
  dstPath: string;
  /** The link's target, exactly as stored in the source link. */
  target: string;
  dirMode?: number;
}

/**
 * Makes `dstPath` a symbolic link to `target`, replacing whatever file or link is
 * there in one rename: the link is made under a temporary name beside it first.
 * Local targets only (the Storage interface has no way to make a link over SFTP).
 */
export async function copyLink(input: CopyLinkInput): Promise<void> {
  const { dst, dstPath } = input;
  if (dst.kind !== 'local') {
    throw new SyncError('E_UNSUPPORTED', `cannot make a symbolic link on ${dst.label}`, {
      op: 'copy link',
      path: dstPath,
      hint: 'links: copy-as-link needs a local replica',
    });
  }
  await dst.mkdirp(posix.dirname(dstPath), input.dirMode === undefined ? {} : { mode: input.dirMode });
  const tempPath = temporaryPathFor(dstPath);
  try {
    await symlink(input.target, tempPath);
    await commitTemporary({ storage: dst, tempPath, targetPath: dstPath, overwrite: true });
  } catch (err) {
    await dst.remove(tempPath).catch(() => undefined);
    throw toSyncError(err, { op: 'copy link', path: dstPath });
  }
}
