import { constants, createReadStream } from 'node:fs';
import { copyFile as fsCopyFile, link } from 'node:fs/promises';
import { posix } from 'node:path';
import { SyncError, toSyncError } from '../errors/index.js';
import type { Storage, StorageStat } from '../storage/storage.js';
import { commitTemporary } from './commit-temporary.js';
import { hashStream } from './hash-stream.js';
import type { SyncFolder } from './shared-folder-sync.js';
import { statIfExists } from './stat-if-exists.js';
import { fileNameTimestamp, numberedName, withStemSuffix } from './numbered-name.js';
import { fsyncFile } from './sync-local-path.js';
import { temporaryPathFor } from './temporary-name.js';

/**
 * What to do when the target name holds a different file:
 * overwrite (atomic replace), skip (leave it), rename (write ours as `name (1).ext`),
 * fail (leave it, E_EXISTS), keep-both (the older file is renamed with its mtime as a
 * suffix and ours takes the name: the archive's rule).
 */
export type CopyConflictPolicy = 'overwrite' | 'skip' | 'rename' | 'fail' | 'keep-both';

export interface CopyFileInput {
  /** The local file to copy. */
  srcPath: string;
  /** What the caller knows of the source; `sha256` saves a re-read when verifying. */
  src: { sizeBytes: number; mtimeMs: number; sha256?: string };
  dst: Storage;
  dstPath: string;
  onConflict: CopyConflictPolicy;
  verify: 'size' | 'sha256';
  /** `hardlink` links instead of copying (local destinations on the same file system). */
  link?: 'copy' | 'hardlink';
  preserveMtime: boolean;
  fileMode?: number;
  dirMode?: number;
  signal?: AbortSignal;
  /** Syncs a local target's folder after the rename; may be shared by the copies of a pass. */
  syncFolder?: SyncFolder;
}

export interface CopyFileResult {
  outcome: 'copied' | 'already-present' | 'skipped-conflict' | 'renamed';
  /** Where the copy is: `dstPath`, or the numbered name for `renamed`. */
  dstPath: string;
  sizeBytes: number;
  sha256?: string;
  /** keep-both: where the older file was moved. */
  displacedPath?: string;
}

const MAX_NUMBERED_NAMES = 1000;

/**
 * Copies one local file to a storage: written to a temporary name beside the target,
 * verified (size; sha256 read back when asked), mtime set, synced, then renamed into
 * place. A crash leaves only the temporary. An identical file already at the target
 * (same size and mtime) is left as is and reported `already-present`.
 */
export async function copyFile(input: CopyFileInput): Promise<CopyFileResult> {
  const { dst, dstPath } = input;
  await dst.mkdirp(posix.dirname(dstPath), input.dirMode === undefined ? {} : { mode: input.dirMode });
  const existing = await statIfExists(dst, dstPath);
  if (existing) {
    const verdict = await compareExisting(input, dstPath, existing);
    if (verdict !== 'different') return verdict;
    if (input.onConflict === 'rename') {
      // Ours may already be beside theirs, from a run that stopped before it was recorded.
      const earlier = await findIdenticalNumbered(input, dstPath);
      if (earlier) return { outcome: 'already-present', dstPath: earlier, sizeBytes: input.src.sizeBytes };
    }
  }
  const tempPath = temporaryPathFor(dstPath);
  try {
    const written = await writeTemporary(input, tempPath);
    return await commit(input, tempPath, written);
  } catch (err) {
    await dst.remove(tempPath).catch(() => undefined);
    throw toSyncError(err, { op: 'copy', path: input.srcPath, dstPath, host: dst.label });
  }
}

async function writeTemporary(input: CopyFileInput, tempPath: string): Promise<{ sha256?: string }> {
  const { dst } = input;
  let sha256 = input.src.sha256;
  if (dst.kind === 'local' && input.link === 'hardlink') {
    await link(input.srcPath, tempPath).catch((err: unknown) => {
      throw toSyncError(err, {
        op: 'hardlink',
        path: input.srcPath,
        dstPath: tempPath,
        hint: 'link: hardlink needs the destination on the same file system as incoming; use link: copy',
      });
    });
    return sha256 === undefined ? {} : { sha256 };
  }
  if (dst.kind === 'local' && input.verify !== 'sha256') {
    // Reflink where the file system can (a copy-on-write clone is instant), kernel copy otherwise.
    await fsCopyFile(input.srcPath, tempPath, constants.COPYFILE_FICLONE).catch((err: unknown) => {
      throw toSyncError(err, { op: 'copy', path: input.srcPath, dstPath: tempPath });
    });
    if (input.fileMode !== undefined) await dst.setMode(tempPath, input.fileMode);
  } else {
    const sent = await dst.upload(input.srcPath, tempPath, {
      ...(input.signal ? { signal: input.signal } : {}),
      ...(input.fileMode !== undefined ? { fileMode: input.fileMode } : {}),
      fsync: dst.kind === 'sftp',
    });
    sha256 ??= sent.sha256;
    if (sent.sha256 !== sha256) {
      throw new SyncError(
        'E_VERIFY',
        `${input.srcPath} changed while it was copied (sha256 differs from when it was fetched)`,
        {
          op: 'copy',
          path: input.srcPath,
          hint: 'it is retried on the next pass',
        },
      );
    }
  }
  if (input.preserveMtime) await dst.setTimes(tempPath, input.src.mtimeMs);
  if (dst.kind === 'local') await fsyncFile(tempPath);
  await verifyTemporary(input, tempPath, sha256);
  return sha256 === undefined ? {} : { sha256 };
}

async function verifyTemporary(
  input: CopyFileInput,
  tempPath: string,
  expectedSha256: string | undefined,
): Promise<void> {
  const written = await input.dst.stat(tempPath);
  if (written.sizeBytes !== input.src.sizeBytes) {
    throw new SyncError(
      'E_VERIFY',
      `copy of ${input.srcPath} has ${written.sizeBytes} bytes, expected ${input.src.sizeBytes}`,
      {
        op: 'verify',
        path: input.dstPath,
        host: input.dst.label,
        hint: 'check free space at the destination; it is retried',
      },
    );
  }
  if (input.verify !== 'sha256') return;
  const readBack = await hashStream(
    await input.dst.openRead(tempPath, input.signal ? { signal: input.signal } : {}),
  );
  if (readBack.sha256 !== expectedSha256) {
    throw new SyncError('E_VERIFY', `copy of ${input.srcPath} reads back with a different sha256`, {
      op: 'verify',
      path: input.dstPath,
      host: input.dst.label,
      hint: 'the destination stores different bytes than were sent: check its disk; it is retried',
    });
  }
}

async function commit(
  input: CopyFileInput,
  tempPath: string,
  written: { sha256?: string },
): Promise<CopyFileResult> {
  const { dst, dstPath } = input;
  const copied = (
    outcome: CopyFileResult['outcome'],
    path: string,
    extra: Partial<CopyFileResult> = {},
  ): CopyFileResult => ({
    outcome,
    dstPath: path,
    sizeBytes: input.src.sizeBytes,
    ...(written.sha256 !== undefined ? { sha256: written.sha256 } : {}),
    ...extra,
  });
  const place = placerFor(input);
  if (input.onConflict === 'overwrite') {
    await place(tempPath, dstPath, true);
    return copied('copied', dstPath);
  }
  // Every other policy must never replace a file: rename without overwrite, and look again on E_EXISTS.
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      await place(tempPath, dstPath, false);
      return copied('copied', dstPath);
    } catch (err) {
      if (!(err instanceof SyncError && err.code === 'E_EXISTS')) throw err;
    }
    const existing = await statIfExists(dst, dstPath);
    if (!existing) continue;
    const verdict = await compareExisting(input, dstPath, existing);
    if (verdict !== 'different') {
      await dst.remove(tempPath).catch(() => undefined);
      return verdict;
    }
    if (input.onConflict === 'rename') {
      return copied(
        'renamed',
        await placeUnderFreeName(place, dst, tempPath, (n) => numberedName(dstPath, n)),
      );
    }
    if (input.onConflict === 'keep-both') {
      const displacedPath = await placeUnderFreeName(place, dst, dstPath, (n) =>
        withStemSuffix(dstPath, `.${fileNameTimestamp(existing.mtimeMs)}${n === 1 ? '' : `-${n}`}`),
      );
      await place(tempPath, dstPath, false);
      return copied('copied', dstPath, { displacedPath });
    }
  }
  throw new SyncError('E_EXISTS', `${dstPath} keeps changing while we try to place a file there`, {
    op: 'copy',
    path: dstPath,
    host: dst.label,
    hint: 'another process writes the same name; it is retried on the next pass',
  });
}

/** Renames a file within the destination, then syncs the folder (see commitTemporary). */
type Place = (fromPath: string, toPath: string, overwrite: boolean) => Promise<void>;

function placerFor(input: CopyFileInput): Place {
  return (fromPath, toPath, overwrite) =>
    commitTemporary({
      storage: input.dst,
      tempPath: fromPath,
      targetPath: toPath,
      overwrite,
      ...(input.syncFolder ? { syncFolder: input.syncFolder } : {}),
    });
}

/** Renames `fromPath` to the first free name `nameFor(1)`, `nameFor(2)`, … and returns it. */
async function placeUnderFreeName(
  place: Place,
  dst: Storage,
  fromPath: string,
  nameFor: (n: number) => string,
): Promise<string> {
  for (let n = 1; n <= MAX_NUMBERED_NAMES; n += 1) {
    const candidate = nameFor(n);
    try {
      await place(fromPath, candidate, false);
      return candidate;
    } catch (err) {
      if (!(err instanceof SyncError && err.code === 'E_EXISTS')) throw err;
    }
  }
  throw new SyncError('E_EXISTS', `no free name for ${fromPath} after ${MAX_NUMBERED_NAMES} tries`, {
    op: 'rename',
    path: fromPath,
    host: dst.label,
    hint: 'clean up the numbered copies in that folder',
  });
}

/** The first of `name (1).ext`, `name (2).ext`, … that holds the same file, up to the first free name. */
async function findIdenticalNumbered(input: CopyFileInput, dstPath: string): Promise<string | undefined> {
  for (let n = 1; n <= MAX_NUMBERED_NAMES; n += 1) {
    const candidate = numberedName(dstPath, n);
    const existing = await statIfExists(input.dst, candidate);
    if (!existing) return undefined;
    if (await isSameFile(input, candidate, existing)) return candidate;
  }
  return undefined;
}

/**
 * Decides about a file already at the target: the same file (size, mtime — and sha256
 * when verifying) counts as delivered; a different one is handled by the policy.
 */
async function compareExisting(
  input: CopyFileInput,
  dstPath: string,
  existing: StorageStat,
): Promise<CopyFileResult | 'different'> {
  if (existing.type === 'dir') {
    throw new SyncError('E_EXISTS', `a folder is in the way of ${dstPath}`, {
      op: 'copy',
      path: dstPath,
      host: input.dst.label,
      hint: 'move the folder away or rename the file at its source',
    });
  }
  if (await isSameFile(input, dstPath, existing)) {
    return { outcome: 'already-present', dstPath, sizeBytes: existing.sizeBytes };
  }
  if (input.onConflict === 'skip')
    return { outcome: 'skipped-conflict', dstPath, sizeBytes: existing.sizeBytes };
  if (input.onConflict === 'fail') {
    throw new SyncError('E_EXISTS', `${dstPath} already exists with other content`, {
      op: 'copy',
      path: dstPath,
      host: input.dst.label,
      hint: 'on_conflict is fail: remove or rename the file at the destination, or change on_conflict',
    });
  }
  return 'different';
}

async function isSameFile(input: CopyFileInput, dstPath: string, existing: StorageStat): Promise<boolean> {
  if (existing.type !== 'file' || existing.sizeBytes !== input.src.sizeBytes) return false;
  // SFTP (v3) carries whole seconds only.
  const sameMtime =
    input.dst.kind === 'sftp'
      ? Math.floor(existing.mtimeMs / 1000) === Math.floor(input.src.mtimeMs / 1000)
      : existing.mtimeMs === input.src.mtimeMs;
  if (sameMtime && input.verify !== 'sha256') return true;
  // Same size, but verifying by content or another mtime (preserve_mtime: false, or a copy a
  // crash left before it was recorded): the bytes decide. Without this, a restart after such a
  // crash would make "name (1).ext" under rename, or fail for ever under fail.
  const srcSha256 = input.src.sha256 ?? (await hashLocalFile(input.srcPath));
  const stream = await input.dst.openRead(dstPath, input.signal ? { signal: input.signal } : {});
  return (await hashStream(stream)).sha256 === srcSha256;
}

async function hashLocalFile(localPath: string): Promise<string> {
  try {
    return (await hashStream(createReadStream(localPath))).sha256;
  } catch (err) {
    throw toSyncError(err, { op: 'read', path: localPath });
  }
}
