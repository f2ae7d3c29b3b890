import { constants } from 'node:fs';
import { copyFile as fsCopyFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { SyncError, toSyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';
import { commitTemporary } from './commit-temporary.js';
import { fetchFile } from './fetch-file.js';
import { fsyncFile } from './sync-local-path.js';
import { temporaryPathFor } from './temporary-name.js';

export interface TransferFileInput {
  src: Storage;
  srcPath: string;
  /** The version of the source file that was listed; `sha256` when it was hashed (compare: checksum). */
  listed: { sizeBytes: number; mtimeMs: number; sha256?: string };
  dst: Storage;
  /** Replaced if it exists: the caller has decided it differs. */
  dstPath: string;
  fileMode?: number;
  /** For the target's folder, when it has to be made. */
  dirMode?: number;
  /**
   * Sync the target's folder after the rename (local targets; default true). A caller
   * that copies many files into few folders may sync each folder once at the end
   * instead: a rename lost in a crash only leaves the old file and a temporary.
   */
  syncFolder?: boolean;
  signal?: AbortSignal;
}

export interface TransferFileResult {
  sizeBytes: number;
  sha256?: string;
}

/**
 * Copies one file from one storage to another and replaces the target atomically:
 * written to a temporary name beside it, checked (size; and, when the source was
 * compared by sha256, the bytes written hash the same), given the source's mtime,
 * synced, then renamed over whatever is there. The caller has already decided the
 * target differs, so nothing is read from it first.
 *
 * A local source into a local target takes the copier's fast path (a reflink where
 * the file system can, a kernel copy otherwise); a local source into SFTP is an
 * upload; an SFTP source into a local target a download (`fetchFile`, which also
 * proves the source did not change meanwhile). SFTP to SFTP is not supported.
 */
export async function transferFile(input: TransferFileInput): Promise<TransferFileResult> {
  const { src, dst, srcPath, dstPath } = input;
  if (src.kind !== 'local' && dst.kind !== 'local') {
    throw new SyncError('E_UNSUPPORTED', `cannot copy from ${src.label} to ${dst.label} directly`, {
      op: 'copy',
      path: srcPath,
      dstPath,
      hint: 'one end must be a local folder',
    });
  }
  const tempPath = temporaryPathFor(dstPath);
  try {
    const written = await writeTemporaryWithParent(input, tempPath);
    await verify(input, tempPath, written.sha256);
    if (input.syncFolder === false) await dst.rename(tempPath, dstPath, { overwrite: true });
    else await commitTemporary({ storage: dst, tempPath, targetPath: dstPath, overwrite: true });
    return {
      sizeBytes: input.listed.sizeBytes,
      ...(written.sha256 !== undefined ? { sha256: written.sha256 } : {}),
    };
  } catch (err) {
    await dst.remove(tempPath).catch(() => undefined);
    throw toSyncError(err, {
      op: 'copy',
      path: srcPath,
      dstPath,
      host: src.kind === 'local' ? dst.label : src.label,
    });
  }
}

/** The target's folder normally exists (folders are made first); made here when it does not. */
async function writeTemporaryWithParent(
  input: TransferFileInput,
  tempPath: string,
): Promise<{ sha256?: string }> {
  try {
    return await writeTemporary(input, tempPath);
  } catch (err) {
    if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND') || !(await parentMissing(input))) throw err;
    await input.dst.mkdirp(
      posix.dirname(input.dstPath),
      input.dirMode === undefined ? {} : { mode: input.dirMode },
    );
    return writeTemporary(input, tempPath);
  }
}

async function parentMissing(input: TransferFileInput): Promise<boolean> {
  return input.dst.stat(posix.dirname(input.dstPath)).then(
    () => false,
    () => true,
  );
}

/** The bytes into `tempPath`, with the source's mtime (and `fileMode`), synced. */
async function writeTemporary(input: TransferFileInput, tempPath: string): Promise<{ sha256?: string }> {
  const { src, dst, listed } = input;
  const options = {
    ...(input.signal ? { signal: input.signal } : {}),
    ...(input.fileMode !== undefined ? { fileMode: input.fileMode } : {}),
  };
  if (src.kind !== 'local') {
    // fetchFile sets the mtime and syncs; it rejects a source that changed while it was read.
    const fetched = await fetchFile({ remote: src, remotePath: input.srcPath, listed, tempPath, ...options });
    return { sha256: fetched.sha256 };
  }
  let sha256: string | undefined;
  if (dst.kind === 'local' && listed.sha256 === undefined) {
    await fsCopyFile(input.srcPath, tempPath, constants.COPYFILE_FICLONE).catch((err: unknown) => {
      throw toSyncError(err, { op: 'copy', path: input.srcPath, dstPath: tempPath });
    });
    if (input.fileMode !== undefined) await dst.setMode(tempPath, input.fileMode);
  } else {
    // Streamed, hashing on the way: what was written is known to be what was compared.
    sha256 = (await dst.upload(input.srcPath, tempPath, { ...options, fsync: dst.kind === 'sftp' })).sha256;
  }
  await dst.setTimes(tempPath, listed.mtimeMs);
  if (dst.kind === 'local') await fsyncFile(tempPath);
  return sha256 === undefined ? {} : { sha256 };
}

async function verify(
  input: TransferFileInput,
  tempPath: string,
  writtenSha256: string | undefined,
): Promise<void> {
  const { dst, listed } = input;
  const written = await dst.stat(tempPath);
  if (written.sizeBytes !== listed.sizeBytes) {
    throw new SyncError(
      'E_CHANGED',
      `copy of ${input.srcPath} has ${written.sizeBytes} bytes, the source had ${listed.sizeBytes} when listed`,
      {
        op: 'verify',
        path: input.dstPath,
        host: dst.label,
        hint: 'the source changed meanwhile; it is copied again on the next pass',
      },
    );
  }
  if (listed.sha256 !== undefined && writtenSha256 !== listed.sha256) {
    throw new SyncError(
      'E_CHANGED',
      `${input.srcPath} changed since it was compared (its sha256 differs now)`,
      {
        op: 'verify',
        path: input.srcPath,
        hint: 'it is copied again on the next pass',
      },
    );
  }
}
