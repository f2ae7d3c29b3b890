import { posix } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { cleanTemporaries } from '../actions/clean-temporaries.js';
import { renderLayout } from '../actions/render-layout.js';
import { createSharedFolderSync, type SyncFolder } from '../actions/shared-folder-sync.js';
import type { FetcherConfig, SourceConfig } from '../config/index.js';
import { formatSize } from '../config/index.js';
import { formatErrorLine, retryWithBackoff, SyncError, toSyncError } from '../errors/index.js';
import type { FetchRecord } from '../ledger/ledger.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';
import { applyAfterFetch } from './apply-after-fetch.js';
import { fetchOneFile } from './fetch-one-file.js';
import { type FetchCandidate, listFetchCandidates } from './list-fetch-candidates.js';
import { createFreeSpaceBudget, type FreeSpaceBudget } from './free-space-budget.js';
import { emptyReport, logNotableSkips, noteFileError, noteSkip, type PassReport } from './pass-report.js';
import type { TransferProgress } from './transfer-progress.js';
import { recoverCommits } from './recover-commits.js';
import { runEach } from './run-each.js';
import { TransferSlot } from './transfer-slot.js';

export interface FetchSourceHandle {
  source: SourceConfig;
  remote: Storage;
}

export interface FetchPassInput {
  config: FetcherConfig;
  sources: readonly FetchSourceHandle[];
  local: Storage;
  ledger: Ledger;
  log: Logger;
  /** One cap on transfers in flight across every source (`concurrency_limit`). */
  limit: LimitFunction;
  dryRun: boolean;
  /** Aborted: start no new file. */
  stopSignal: AbortSignal;
  /** Aborted: abort transfers in flight. */
  abortSignal: AbortSignal;
  /** Told of each file `--dry-run` would fetch. */
  onPlan?: (line: string) => void;
  progress?: TransferProgress;
  now?: () => number;
}

/** Codes after which the rest of a source's files are not tried in this pass: the server is gone or refuses us. */
const SOURCE_DOWN_CODES = new Set(['E_CONNECTION', 'E_TIMEOUT', 'E_AUTH', 'E_HOSTKEY']);

/**
 * One pass of the fetcher over every enabled source. Sources run side by side;
 * transfers share one concurrency cap. A failing file never stops the others; a
 * failing source never stops the other sources.
 */
export async function runFetchPass(input: FetchPassInput): Promise<PassReport[]> {
  const { log } = input;
  const now = input.now ?? Date.now;
  const recoveryErrors = input.dryRun ? new Map<string, string[]>() : await prepareIncoming(input);
  const space = createFreeSpaceBudget({
    storage: input.local,
    path: input.config.incoming,
    reserveBytes: input.config.minFreeSpaceBytes,
  });
  const claimedPaths = new Set<string>();
  const syncFolder = createSharedFolderSync();
  return Promise.all(
    input.sources.map(async (handle) => {
      const report = emptyReport(handle.source.name);
      for (const line of recoveryErrors.get(handle.source.name) ?? []) noteFileError(report, line);
      const startedMs = now();
      try {
        await fetchSource(input, handle, report, { space, claimedPaths, syncFolder }, now);
      } catch (err) {
        const error = toSyncError(err, { source: handle.source.name, host: handle.remote.label });
        if (error.code === 'E_ABORTED' || input.abortSignal.aborted) report.error ??= 'interrupted';
        else {
          report.error = formatErrorLine(error);
          log.error(
            { source: handle.source.name, err: error },
            `source ${handle.source.name} failed: ${report.error}`,
          );
        }
      }
      report.durationMs = now() - startedMs;
      logNotableSkips(log, report);
      return report;
    }),
  );
}

/**
 * Before any transfer: finish commits a crash interrupted, then remove leftover
 * temporaries from incoming and archive. Commits are finished for every configured
 * source, disabled ones included, and the temporary of a commit that could not be
 * finished is kept: it is the only copy of a file the ledger says was fetched.
 * Returns the lines of unfinished commits by source.
 */
async function prepareIncoming(input: FetchPassInput): Promise<Map<string, string[]>> {
  const { config, local, ledger, log } = input;
  const keep = new Set<string>();
  const errors = new Map<string, string[]>();
  // Also sources no longer in the config: their interrupted commits still hold fetched files
  // (recorded as fetched, perhaps deleted on the server) that the cleaning below would remove.
  const sourceNames = new Set([
    ...config.sources.map((source) => source.name),
    ...(await ledger.sourcesWithPendingCommits()),
  ]);
  for (const sourceName of sourceNames) {
    const recovery = await recoverCommits({ source: sourceName, local, ledger, log });
    for (const tempPath of recovery.unfinishedTempPaths) keep.add(tempPath);
    if (recovery.errors.length > 0) errors.set(sourceName, recovery.errors);
  }
  for (const dirPath of [config.incoming, config.archive]) {
    if (dirPath === undefined) continue;
    await local.mkdirp(dirPath, config.dirMode === undefined ? {} : { mode: config.dirMode });
    const removed = await cleanTemporaries({
      storage: local,
      dirPath,
      keep,
      signal: input.abortSignal,
      onError: (error, path) =>
        log.warn({ path, err: error }, `cannot remove a leftover temporary: ${error.message}`),
    });
    if (removed.length > 0)
      log.info(
        { dirPath, count: removed.length, examples: removed.slice(0, 5) },
        `removed ${removed.length} leftover temporaries`,
      );
  }
  return errors;
}

/** What the transfers of one pass share: free space in incoming, and incoming names about to be taken. */
interface PassShared {
  space: FreeSpaceBudget;
  /** Folder syncs after the renames into incoming, shared between the commits of the pass. */
  syncFolder: SyncFolder;
  claimedPaths: Set<string>;
}

async function fetchSource(
  input: FetchPassInput,
  handle: FetchSourceHandle,
  report: PassReport,
  shared: PassShared,
  now: () => number,
): Promise<void> {
  const { config, ledger, log } = input;
  const { space } = shared;
  const { source, remote } = handle;

  // A failed after_fetch step is logged and counted; the ledger keeps it pending for the next pass.
  const afterFetch = async (record: FetchRecord): Promise<void> => {
    const failure = await applyAfterFetch({ source, remote, ledger, record, log, ...dirModeOf(config) });
    if (failure) noteFileError(report, failure);
  };
  if (!input.dryRun) {
    // after_fetch steps that failed on earlier passes: retried without downloading again.
    const pending = await ledger.pendingAfterFetch(source.name);
    await runEach(pending, config.concurrencyLimit, (record) => input.limit(() => afterFetch(record)));
  }

  const candidates = await listFetchCandidates({
    source,
    remote,
    ledger,
    report,
    nowMs: now(),
    log,
    signal: input.stopSignal,
  });
  if (input.dryRun) {
    for (const candidate of candidates) input.onPlan?.(planLine(config, source, candidate, now()));
    report.waiting += candidates.length;
    return;
  }

  let sourceDown: SyncError | undefined;
  let spaceShort = 0;
  // Twice the cap: a file gives its place back before its commit, and another starts meanwhile.
  await runEach(candidates, config.concurrencyLimit * 2, async (candidate) => {
    const slot = new TransferSlot(input.limit);
    await slot.acquire();
    try {
      if (input.stopSignal.aborted || sourceDown) {
        report.waiting += 1;
        return;
      }
      if (!(await space.reserve(candidate.sizeBytes))) {
        spaceShort += 1;
        report.waiting += 1;
        noteSkip(report, 'not enough free space in incoming', candidate.relPath);
        return;
      }
      let writtenBytes = 0;
      try {
        const record = await fetchWithRetries(input, handle, candidate, shared, slot, now);
        writtenBytes = candidate.sizeBytes;
        report.done += 1;
        report.bytes += candidate.sizeBytes;
        await afterFetch(record);
      } catch (err) {
        const error = toSyncError(err, {
          source: source.name,
          path: candidate.remotePath,
          host: remote.label,
        });
        if (error.code === 'E_ABORTED' || input.abortSignal.aborted) {
          report.waiting += 1;
        } else if (error.code === 'E_CHANGED') {
          report.skipped += 1;
          noteSkip(report, 'changed while it was fetched (fetched again later)', candidate.relPath);
        } else if (error.code === 'E_NOT_FOUND' && (await goneFromServer(remote, candidate.remotePath))) {
          // The partner took it back (or a link's target went) after the listing: nothing to fetch.
          report.skipped += 1;
          noteSkip(report, 'gone from the server before it could be fetched', candidate.relPath);
        } else {
          noteFileError(report, formatErrorLine(error));
          log.error(
            { source: source.name, remotePath: candidate.remotePath, err: error },
            `cannot fetch: ${formatErrorLine(error)}`,
          );
          if (SOURCE_DOWN_CODES.has(error.code)) sourceDown ??= error;
        }
      } finally {
        space.release(candidate.sizeBytes, writtenBytes);
      }
    } finally {
      slot.release();
    }
  });
  if (sourceDown) {
    report.error = `${formatErrorLine(sourceDown)} (the remaining files wait for the next pass)`;
  } else if (spaceShort > 0) {
    const free = await input.local.freeSpace(config.incoming);
    report.error = formatErrorLine(
      new SyncError('E_DISK_FULL', `${spaceShort} files wait: not enough free space in ${config.incoming}`, {
        path: config.incoming,
        hint: `free space there (now ${free === null ? 'unknown' : formatSize(free)}, keeping ${formatSize(config.minFreeSpaceBytes)} free as min_free_space asks)`,
      }),
    );
  }
}

async function fetchWithRetries(
  input: FetchPassInput,
  handle: FetchSourceHandle,
  candidate: FetchCandidate,
  shared: PassShared,
  slot: TransferSlot,
  now: () => number,
): Promise<FetchRecord> {
  const { config, ledger, log } = input;
  const { source, remote } = handle;
  const fileProgress = input.progress?.fileStarted(
    `${source.name}/${candidate.relPath}`,
    candidate.sizeBytes,
  );
  try {
    const record = await retryWithBackoff(
      async () => {
        // A retry transfers again: it waits for a place under the cap like any transfer.
        await slot.acquire();
        return fetchOneFile({
          config,
          source,
          remote,
          local: input.local,
          ledger,
          candidate,
          claimedPaths: shared.claimedPaths,
          syncFolder: shared.syncFolder,
          log,
          nowMs: now(),
          signal: input.abortSignal,
          ...(fileProgress ? { onProgress: (bytesDone: number) => fileProgress.update(bytesDone) } : {}),
          // With after_fetch keep nothing follows on the server: the commit need not hold a place. A
          // delete or move does, and keeps its place to the end, so files stay in listing order.
          ...(source.afterFetch === 'keep' ? { onDownloaded: () => slot.release() } : {}),
        });
      },
      {
        retries: source.retries,
        baseDelayMs: 1_000,
        maxDelayMs: 30_000,
        signal: input.abortSignal,
        onRetry: (err, attempt, delayMs) =>
          log.warn(
            { source: source.name, remotePath: candidate.remotePath, attempt, delayMs, err },
            `fetch failed, retrying in ${Math.round(delayMs / 100) / 10} s: ${formatErrorLine(err)}`,
          ),
      },
    );
    fileProgress?.done(true);
    log.info(
      {
        source: source.name,
        remotePath: candidate.remotePath,
        localPath: record.localPath,
        sizeBytes: record.sizeBytes,
        sha256: record.sha256,
      },
      `fetched ${candidate.remotePath} → ${record.localPath}`,
    );
    return record;
  } catch (err) {
    fileProgress?.done(false);
    throw err;
  }
}

/** Whether `remotePath` (a link: its target) no longer exists; any other answer, or none, is "not known gone". */
async function goneFromServer(remote: Storage, remotePath: string): Promise<boolean> {
  try {
    await remote.stat(remotePath);
    return false;
  } catch (err) {
    return err instanceof SyncError && err.code === 'E_NOT_FOUND';
  }
}

function planLine(
  config: FetcherConfig,
  source: SourceConfig,
  candidate: FetchCandidate,
  nowMs: number,
): string {
  const target = posix.join(
    config.incoming,
    renderLayout(source.incomingLayout, {
      source: source.name,
      relPath: candidate.relPath,
      date: new Date(nowMs),
    }),
  );
  const after = source.afterFetch === 'keep' ? '' : `, then ${source.afterFetch} on the server`;
  return `would fetch ${source.name}:${candidate.remotePath} (${formatSize(candidate.sizeBytes)}) → ${target}${after}`;
}

function dirModeOf(config: FetcherConfig): { dirMode?: number } {
  return config.dirMode === undefined ? {} : { dirMode: config.dirMode };
}
