import { rm, utimes } from 'node:fs/promises';
import { SyncError, toSyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';
import { fsyncFile } from './sync-local-path.js';

export interface FetchFileInput {
  remote: Storage;
  remotePath: string;
  /** Size and mtime from the listing: the version we decided to fetch. */
  listed: { sizeBytes: number; mtimeMs: number };
  /** Local temporary to download into; its folder exists. */
  tempPath: string;
  /** sha256 the partner published (sidecar), when verifying against it. */
  expectedSha256?: string;
  fileMode?: number;
  signal?: AbortSignal;
  onProgress?: (bytesDone: number, sizeBytes: number) => void;
}

export interface FetchFileResult {
  sizeBytes: number;
  sha256: string;
  durationMs: number;
}

/**
 * Downloads one remote file into a local temporary and proves it complete: the size
 * matches the listing, the sha256 matches the sidecar when there is one, and the
 * remote file has not changed since it was listed (else E_CHANGED: the partner is
 * still writing it). The temporary gets the remote mtime and is synced before this
 * resolves. On any failure the temporary is removed; nothing is renamed here.
 */
export async function fetchFile(input: FetchFileInput): Promise<FetchFileResult> {
  const { remote, remotePath, tempPath, listed } = input;
  try {
    // The mtime, the sync and the stat of the source ride along with the download where the
    // storage can do them there (no reopening, no extra round trip); otherwise they follow.
    const result = await remote.download(remotePath, tempPath, {
      ...(input.signal ? { signal: input.signal } : {}),
      ...(input.onProgress ? { onProgress: input.onProgress } : {}),
      ...(input.fileMode !== undefined ? { fileMode: input.fileMode } : {}),
      fsync: true,
      mtimeMs: listed.mtimeMs,
      expectedSizeBytes: listed.sizeBytes,
      statSourceAfter: true,
    });
    const after = result.sourceAfter ?? (await remote.stat(remotePath));
    if (
      after.sizeBytes !== listed.sizeBytes ||
      after.mtimeMs !== listed.mtimeMs ||
      result.sizeBytes !== after.sizeBytes
    ) {
      throw new SyncError(
        'E_CHANGED',
        `${remotePath} changed while it was fetched (listed ${listed.sizeBytes} bytes, now ${after.sizeBytes}; got ${result.sizeBytes})`,
        {
          op: 'fetch',
          path: remotePath,
          host: remote.label,
          hint: 'the partner may still be writing it; it is fetched again on a later pass (raise min_age if this repeats)',
        },
      );
    }
    if (input.expectedSha256 !== undefined && input.expectedSha256 !== result.sha256) {
      throw new SyncError(
        'E_VERIFY',
        `${remotePath} does not match its .sha256 sidecar (got ${result.sha256})`,
        {
          op: 'verify',
          path: remotePath,
          host: remote.label,
          hint: 'the file or its sidecar is damaged at the source; ask the partner to resend it',
        },
      );
    }
    if (result.mtimeSet !== true) {
      await utimes(tempPath, new Date(), new Date(listed.mtimeMs)).catch((err: unknown) => {
        throw toSyncError(err, { op: 'set mtime', path: tempPath });
      });
    }
    if (result.mtimeSet !== true || result.synced !== true) await fsyncFile(tempPath);
    return result;
  } catch (err) {
    await rm(tempPath, { force: true }).catch(() => undefined);
    throw toSyncError(err, { op: 'fetch', path: remotePath, host: remote.label });
  }
}
