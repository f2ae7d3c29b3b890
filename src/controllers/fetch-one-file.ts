import { posix } from 'node:path';
import { commitTemporary } from '../actions/commit-temporary.js';
import { copyFile } from '../actions/copy-file.js';
import { fetchFile } from '../actions/fetch-file.js';
import { numberedName } from '../actions/numbered-name.js';
import { readSidecarSha256 } from '../actions/read-sidecar.js';
import { renderLayout } from '../actions/render-layout.js';
import { joinInside } from '../actions/safe-relative-path.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import { temporaryPathFor } from '../actions/temporary-name.js';
import type { FetcherConfig, SourceConfig } from '../config/index.js';
import type { FetchRecord, Ledger } from '../ledger/ledger.js';
import type { Storage } from '../storage/storage.js';
import type { FetchCandidate } from './list-fetch-candidates.js';

export interface FetchOneFileInput {
  config: FetcherConfig;
  source: SourceConfig;
  remote: Storage;
  local: Storage;
  ledger: Ledger;
  candidate: FetchCandidate;
  nowMs: number;
  signal?: AbortSignal;
  onProgress?: (bytesDone: number, sizeBytes: number) => void;
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

  try {
    const { localPath, overwrite } = await chooseIncomingPath(input, wantedPath);
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
        ...(config.fileMode !== undefined ? { fileMode: config.fileMode } : {}),
        ...(config.dirMode !== undefined ? { dirMode: config.dirMode } : {}),
        ...(input.signal ? { signal: input.signal } : {}),
      });
      archivePath = archived.dstPath;
    }
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
    await commitTemporary({ storage: local, tempPath, targetPath: localPath, overwrite });
    await ledger.markCommitted(record);
    return { ...record, commitState: 'committed' };
  } catch (err) {
    // Before the ledger record the temporary is ours to remove; after it, recovery needs it.
    const recorded = await ledger.latestFetch(source.name, candidate.remotePath);
    if (recorded?.tempPath !== tempPath) await local.remove(tempPath).catch(() => undefined);
    throw err;
  }
}

/**
 * Where the file goes in incoming. Its own earlier version (a changed remote file) is
 * replaced; a file a crashed pass left there with the same size and mtime is the same
 * file and is replaced too; any other file on that name is never overwritten — ours
 * takes the first free `name (n).ext`.
 */
async function chooseIncomingPath(
  input: FetchOneFileInput,
  wantedPath: string,
): Promise<{ localPath: string; overwrite: boolean }> {
  const { local, ledger, source, candidate } = input;
  const existing = await statIfExists(local, wantedPath);
  if (!existing) return { localPath: wantedPath, overwrite: false };
  const earlier = await ledger.latestFetch(source.name, candidate.remotePath);
  const sameFile = existing.sizeBytes === candidate.sizeBytes && existing.mtimeMs === candidate.mtimeMs;
  if (earlier?.localPath === wantedPath || sameFile) return { localPath: wantedPath, overwrite: true };
  for (let n = 1; ; n += 1) {
    const candidatePath = numberedName(wantedPath, n);
    if (!(await statIfExists(local, candidatePath))) return { localPath: candidatePath, overwrite: false };
  }
}
