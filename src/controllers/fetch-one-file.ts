import { posix } from 'node:path';
import { commitTemporary } from '../actions/commit-temporary.js';
import { copyFile } from '../actions/copy-file.js';
import { fetchFile } from '../actions/fetch-file.js';
import { hashStream } from '../actions/hash-stream.js';
import { numberedName } from '../actions/numbered-name.js';
import { readSidecarSha256 } from '../actions/read-sidecar.js';
import { renderLayout } from '../actions/render-layout.js';
import type { SyncFolder } from '../actions/shared-folder-sync.js';
import { joinInside } from '../actions/safe-relative-path.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import { temporaryPathFor } from '../actions/temporary-name.js';
import type { FetcherConfig, SourceConfig } from '../config/index.js';
import type { FetchRecord, Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import { SyncError } from '../errors/index.js';
import type { Storage, StorageStat } from '../storage/storage.js';
import type { FetchCandidate } from './list-fetch-candidates.js';

const MAX_NUMBERED_NAMES = 1000;

export interface FetchOneFileInput {
  config: FetcherConfig;
  source: SourceConfig;
  remote: Storage;
  local: Storage;
  ledger: Ledger;
  candidate: FetchCandidate;
  /**
   * Incoming paths other transfers of this pass have chosen and not committed yet:
   * shared by every fetch of a pass so two files never pick the same name.
   */
  claimedPaths?: Set<string>;
  nowMs: number;
  signal?: AbortSignal;
  onProgress?: (bytesDone: number, sizeBytes: number) => void;
  /** Syncs incoming's folders after the rename; shared by the fetches of a pass (one sync serves many). */
  syncFolder?: SyncFolder;
  /**
   * Told once the bytes are in place (the synced temporary, and the archive copy): what
   * follows, the commit, moves no bytes and waits on ledger and folder syncs.
   */
  onDownloaded?: () => void;
  /** Each step of the file at trace level (`-vv`), for following one file through. */
  log?: Logger;
}

/**
 * One file, start to end, in the order that keeps the invariants: download into a
 * temporary beside its target in incoming → verify (size, sidecar, unchanged remote)
 * → sync → archive copy (made from the temporary) → ledger record marked
 * "committing" with the temporary's name → rename into incoming → mark committed.
 * A crash at any point leaves either a temporary the next pass removes, or a
 * committing record whose temporary the next pass renames (recoverCommits): never a
 * half-written file in incoming, never a file fetched twice. The after-fetch step
 * runs later, only on committed records.
 */
export async function fetchOneFile(input: FetchOneFileInput): Promise<FetchRecord> {
  const { config, source, remote, local, ledger, candidate } = input;
  const date = new Date(input.nowMs);
  const layoutValues = { source: source.name, relPath: candidate.relPath, date };
  const wantedPath = joinInside(config.incoming, renderLayout(source.incomingLayout, layoutValues));
  await local.mkdirp(posix.dirname(wantedPath), config.dirMode === undefined ? {} : { mode: config.dirMode });

  const expectedSha256 =
    source.verify === 'sidecar'
      ? await readSidecarSha256(remote, `${candidate.remotePath}.sha256`, input.signal)
      : undefined;
  const tempPath = temporaryPathFor(wantedPath);
  const fetched = await fetchFile({
    remote,
    remotePath: candidate.remotePath,
    listed: candidate,
    tempPath,
    ...(expectedSha256 !== undefined ? { expectedSha256 } : {}),
    ...(config.fileMode !== undefined ? { fileMode: config.fileMode } : {}),
    ...(input.signal ? { signal: input.signal } : {}),
    ...(input.onProgress ? { onProgress: input.onProgress } : {}),
  });
  // Only when -vv asked for them: no objects built per file otherwise.
  const traceLog = input.log?.isLevelEnabled('trace') ? input.log : undefined;
  const trace = { source: source.name, path: candidate.remotePath };
  traceLog?.trace(
    {
      ...trace,
      tempPath,
      sizeBytes: fetched.sizeBytes,
      sha256: fetched.sha256,
      durationMs: fetched.durationMs,
    },
    'downloaded and verified into a temporary',
  );

  const claimedPaths = input.claimedPaths ?? new Set<string>();
  let claimed: string | undefined;
  try {
    const { localPath, overwrite } = await chooseIncomingPath(
      input,
      wantedPath,
      fetched.sha256,
      claimedPaths,
    );
    claimed = localPath;
    let archivePath: string | undefined;
    if (config.archive !== undefined) {
      const archived = await copyFile({
        srcPath: tempPath,
        src: { sizeBytes: fetched.sizeBytes, mtimeMs: candidate.mtimeMs, sha256: fetched.sha256 },
        dst: local,
        dstPath: joinInside(config.archive, renderLayout(config.archiveLayout, layoutValues)),
        onConflict: 'keep-both',
        verify: 'size',
        preserveMtime: true,
        ...(input.syncFolder ? { syncFolder: input.syncFolder } : {}),
        ...(config.fileMode !== undefined ? { fileMode: config.fileMode } : {}),
        ...(config.dirMode !== undefined ? { dirMode: config.dirMode } : {}),
        ...(input.signal ? { signal: input.signal } : {}),
      });
      archivePath = archived.dstPath;
      traceLog?.trace({ ...trace, archivePath }, 'archived');
    }
    input.onDownloaded?.();
    const record: FetchRecord = {
      source: source.name,
      remotePath: candidate.remotePath,
      sizeBytes: candidate.sizeBytes,
      mtimeMs: candidate.mtimeMs,
      sha256: fetched.sha256,
      localPath,
      ...(archivePath !== undefined ? { archivePath } : {}),
      fetchedAtMs: Date.now(),
      afterFetch: source.afterFetch,
      afterFetchState: source.afterFetch === 'keep' ? 'done' : 'pending',
      commitState: 'committing',
      tempPath,
    };
    await ledger.recordFetch(record);
    await commitTemporary({
      storage: local,
      tempPath,
      targetPath: localPath,
      overwrite,
      ...(input.syncFolder ? { syncFolder: input.syncFolder } : {}),
    });
    await ledger.markCommitted(record);
    traceLog?.trace({ ...trace, localPath }, 'recorded in the ledger and renamed into incoming');
    return { ...record, commitState: 'committed' };
  } catch (err) {
    // Before the ledger record the temporary is ours to remove; after it, recovery needs it.
    const recorded = await ledger.latestFetch(source.name, candidate.remotePath);
    if (recorded?.tempPath !== tempPath) await local.remove(tempPath).catch(() => undefined);
    throw err;
  } finally {
    if (claimed !== undefined) claimedPaths.delete(claimed);
  }
}

/**
 * Where the file goes in incoming: `wantedPath`, else the first `name (n).ext` that
 * is free. A name already holding this remote file's earlier version (a changed file)
 * is replaced, and so is one holding exactly these bytes (left by a run whose ledger
 * was lost); any other file is never overwritten, nor a name another transfer of this
 * pass has chosen. The chosen name is added to `claimedPaths` before this returns.
 */
async function chooseIncomingPath(
  input: FetchOneFileInput,
  wantedPath: string,
  sha256: string,
  claimedPaths: Set<string>,
): Promise<{ localPath: string; overwrite: boolean }> {
  const { local, ledger, source, candidate } = input;
  const earlier = await ledger.latestFetch(source.name, candidate.remotePath);
  for (let n = 0; n <= MAX_NUMBERED_NAMES; n += 1) {
    const path = n === 0 ? wantedPath : numberedName(wantedPath, n);
    const existing = await statIfExists(local, path);
    const replaceable =
      existing !== undefined &&
      existing.type === 'file' &&
      (earlier?.localPath === path || (await holdsSameBytes(local, path, existing, candidate, sha256)));
    // Checked after the awaits above, and claimed with no await in between: no other transfer can slip in.
    if (claimedPaths.has(path) || (existing !== undefined && !replaceable)) continue;
    claimedPaths.add(path);
    return { localPath: path, overwrite: existing !== undefined };
  }
  throw new SyncError('E_EXISTS', `no free name for ${wantedPath} after ${MAX_NUMBERED_NAMES} tries`, {
    op: 'fetch',
    path: wantedPath,
    hint: 'incoming holds too many files of that name: let the copier deliver them, or clean up',
  });
}

async function holdsSameBytes(
  local: Storage,
  path: string,
  existing: StorageStat,
  candidate: FetchCandidate,
  sha256: string,
): Promise<boolean> {
  if (existing.sizeBytes !== candidate.sizeBytes || existing.mtimeMs !== candidate.mtimeMs) return false;
  return (await hashStream(await local.openRead(path))).sha256 === sha256;
}
