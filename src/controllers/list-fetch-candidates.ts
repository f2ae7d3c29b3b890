import { posix } from 'node:path';
import { createPathFilter, includesDotPaths } from '../actions/path-filter.js';
import type { SourceConfig } from '../config/index.js';
import { formatErrorLine, toSyncError } from '../errors/index.js';
import type { FetchKey, Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage, StorageEntry } from '../storage/storage.js';
import { noteFileError, noteSkip, type PassReport } from './pass-report.js';
import { checkSizeAndAge, type SelectionRules, selectRemoteEntry } from './select-remote-entry.js';

export interface FetchCandidate extends FetchKey {
  /** Path relative to `remote_dir`. */
  relPath: string;
}

export interface ListFetchCandidatesInput {
  source: SourceConfig;
  remote: Storage;
  ledger: Ledger;
  report: PassReport;
  nowMs: number;
  log: Logger;
  signal?: AbortSignal;
}

/** Keys asked of the ledger at once: big enough to amortise, small enough to stream a huge folder. */
const LEDGER_BATCH = 1000;

/**
 * Lists `remote_dir`, applies the selection rules, drops what the ledger already holds,
 * and returns the rest oldest first (capped at `max_files_per_pass`). The listing is
 * streamed: memory grows with the files to fetch, not with the folder.
 */
export async function listFetchCandidates(input: ListFetchCandidatesInput): Promise<FetchCandidate[]> {
  const { source, remote, report, log } = input;
  const rules: SelectionRules = {
    pathFilter: createPathFilter(source.include, source.exclude),
    minAgeMs: source.minAgeMs,
    ...(source.minSizeBytes !== undefined ? { minSizeBytes: source.minSizeBytes } : {}),
    ...(source.maxSizeBytes !== undefined ? { maxSizeBytes: source.maxSizeBytes } : {}),
    followLinks: source.followLinks,
    sidecars: source.verify === 'sidecar',
    nowMs: input.nowMs,
  };
  const skipDir = folderSkipper(source);
  const realRemoteDir = source.followLinks ? await remote.realPath(source.remoteDir) : undefined;
  const candidates: FetchCandidate[] = [];
  const sidecars = new Set<string>();
  let batch: FetchCandidate[] = [];

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const fresh = await input.ledger.filterNotFetched(batch.map(toKey));
    const freshKeys = new Set(fresh.map(keyId));
    for (const candidate of batch) {
      if (freshKeys.has(keyId(candidate))) candidates.push(candidate);
      else report.alreadyDone += 1;
    }
    batch = [];
  };

  const listing = remote.list(source.remoteDir, {
    recursive: source.recursive,
    skipDir,
    ...(input.signal ? { signal: input.signal } : {}),
    onError: (error, relPath) => {
      const line = formatErrorLine(
        toSyncError(error, { op: 'list', path: posix.join(source.remoteDir, relPath), host: remote.label }),
      );
      log.error({ source: source.name, folder: relPath, err: error }, `cannot list a folder: ${line}`);
      noteFileError(report, line);
    },
  });
  for await (const entry of listing) {
    if (entry.type !== 'dir') report.listed += 1;
    if (rules.sidecars && entry.type === 'file' && entry.name.endsWith('.sha256'))
      sidecars.add(entry.relPath);
    const selection = selectRemoteEntry(entry, rules);
    if (!selection.take) {
      if (selection.reason === 'folder') continue;
      report.skipped += 1;
      if (selection.warn) noteSkip(report, `${selection.reason}: ${selection.detail}`, entry.relPath);
      continue;
    }
    const candidate = selection.followLink
      ? await resolveLink(entry, source, remote, realRemoteDir ?? source.remoteDir, rules, report)
      : toCandidate(source, entry, entry.sizeBytes, entry.mtimeMs);
    if (!candidate) continue;
    report.selected += 1;
    batch.push(candidate);
    if (batch.length >= LEDGER_BATCH) await flush();
  }
  await flush();

  let ready = candidates;
  if (rules.sidecars) {
    ready = candidates.filter((candidate) => sidecars.has(`${candidate.relPath}.sha256`));
    report.waiting += candidates.length - ready.length;
    if (ready.length < candidates.length) {
      log.debug(
        { source: source.name, count: candidates.length - ready.length },
        'files waiting for their .sha256 sidecar',
      );
    }
  }
  ready.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.relPath < b.relPath ? -1 : 1));
  if (source.maxFilesPerPass !== undefined && ready.length > source.maxFilesPerPass) {
    report.waiting += ready.length - source.maxFilesPerPass;
    ready = ready.slice(0, source.maxFilesPerPass);
  }
  return ready;
}

/**
 * Folders not to descend into: `move_to` when it lies inside `remote_dir` (moved
 * files must not come back), and dot-folders unless an include pattern names one.
 */
function folderSkipper(source: SourceConfig): (relPath: string) => boolean {
  const moveToRel = source.moveTo !== undefined ? relativeInside(source.remoteDir, source.moveTo) : undefined;
  const descendIntoDotFolders = includesDotPaths(source.include);
  return (relPath) => {
    if (moveToRel !== undefined && (relPath === moveToRel || relPath.startsWith(`${moveToRel}/`)))
      return true;
    return !descendIntoDotFolders && posix.basename(relPath).startsWith('.');
  };
}

function relativeInside(parent: string, child: string): string | undefined {
  const rel = posix.relative(posix.normalize(parent), posix.normalize(child));
  return rel === '' || rel.startsWith('..') || posix.isAbsolute(rel) ? undefined : rel;
}

/** A followed link is fetched only when it resolves to a file inside `remote_dir`. */
async function resolveLink(
  entry: StorageEntry,
  source: SourceConfig,
  remote: Storage,
  realRemoteDir: string,
  rules: SelectionRules,
  report: PassReport,
): Promise<FetchCandidate | undefined> {
  const linkPath = posix.join(source.remoteDir, entry.relPath);
  const skip = (detail: string): undefined => {
    report.skipped += 1;
    noteSkip(report, `link-skipped: ${detail}`, entry.relPath);
    return undefined;
  };
  let target: string;
  let stat: Awaited<ReturnType<Storage['stat']>>;
  try {
    target = await remote.realPath(linkPath);
    stat = await remote.stat(linkPath);
  } catch (err) {
    return skip(`cannot be resolved (${toSyncError(err).code}: broken link or a loop)`);
  }
  if (relativeInside(realRemoteDir, target) === undefined) return skip('points outside remote_dir');
  if (stat.type !== 'file') return skip('points at a folder or a special file');
  const tooSomething = checkSizeAndAge(stat, rules);
  if (tooSomething) {
    report.skipped += 1;
    return undefined;
  }
  return toCandidate(source, entry, stat.sizeBytes, stat.mtimeMs);
}

function toCandidate(
  source: SourceConfig,
  entry: StorageEntry,
  sizeBytes: number,
  mtimeMs: number,
): FetchCandidate {
  return {
    source: source.name,
    remotePath: posix.join(source.remoteDir, entry.relPath),
    relPath: entry.relPath,
    sizeBytes,
    mtimeMs,
  };
}

function toKey(candidate: FetchCandidate): FetchKey {
  return {
    source: candidate.source,
    remotePath: candidate.remotePath,
    sizeBytes: candidate.sizeBytes,
    mtimeMs: candidate.mtimeMs,
  };
}

function keyId(key: FetchKey): string {
  return `${key.remotePath}\u0000${key.sizeBytes}\u0000${key.mtimeMs}`;
}
