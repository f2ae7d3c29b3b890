import { posix } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { copyFile } from '../actions/copy-file.js';
import { diskFree } from '../actions/disk-free.js';
import { moveFile } from '../actions/move-file.js';
import { createPathFilter, type PathFilter } from '../actions/path-filter.js';
import { joinInside } from '../actions/safe-relative-path.js';
import type { CopierConfig, DestinationConfig } from '../config/index.js';
import { formatSize } from '../config/index.js';
import { formatErrorLine, retryWithBackoff, SyncError, toSyncError } from '../errors/index.js';
import { incomingFileId, type Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';
import { type IncomingFile, listIncoming } from './list-incoming.js';
import { emptyReport, logNotableSkips, noteFileError, noteSkip, type PassReport } from './pass-report.js';
import { releaseIncomingFile } from './release-incoming-file.js';
import type { TransferProgress } from './transfer-progress.js';

export interface DestinationHandle {
  destination: DestinationConfig;
  storage: Storage;
}

export interface CopyPassInput {
  config: CopierConfig;
  destinations: readonly DestinationHandle[];
  local: Storage;
  ledger: Ledger;
  log: Logger;
  limit: LimitFunction;
  dryRun: boolean;
  stopSignal: AbortSignal;
  abortSignal: AbortSignal;
  onPlan?: (line: string) => void;
  progress?: TransferProgress;
  /** Unmatched files already reported by this process: each is told once, not every pass. */
  reportedUnmatched: Set<string>;
  now?: () => number;
}

/** Name of the summary row for incoming itself (files released, unmatched, waiting). */
export const INCOMING_ROW = '(incoming)';

/**
 * Codes after which a destination gets no more files in this pass: it is denied,
 * full or unreachable. Logged once; its files wait in incoming. (A missing folder is
 * created again, so E_NOT_FOUND is about one file, not the destination.)
 */
const DESTINATION_DOWN_CODES = new Set([
  'E_PERMISSION',
  'E_DISK_FULL',
  'E_CONNECTION',
  'E_TIMEOUT',
  'E_AUTH',
  'E_HOSTKEY',
]);

interface DestinationState extends DestinationHandle {
  filter: PathFilter;
  report: PassReport;
  down?: SyncError;
  inFlightBytes: number;
}

/**
 * One pass of the copier: every file in incoming goes to every destination whose
 * filters match, and leaves incoming only once each of them holds a verified copy.
 * Deliveries are recorded per destination, so a restart or a failing destination
 * never re-copies to destinations that already have the file.
 */
export async function runCopyPass(input: CopyPassInput): Promise<PassReport[]> {
  const { config, log, ledger } = input;
  const now = input.now ?? Date.now;
  const startedMs = now();
  const incomingReport = emptyReport(INCOMING_ROW);
  const states: DestinationState[] = input.destinations.map((handle) => ({
    ...handle,
    filter: createPathFilter(handle.destination.include, handle.destination.exclude),
    report: emptyReport(handle.destination.name),
    inFlightBytes: 0,
  }));

  const listing = await listIncoming({
    local: input.local,
    incoming: config.incoming,
    minAgeMs: config.minAgeMs,
    nowMs: now(),
    log,
    signal: input.stopSignal,
    skipDirs: [config.doneDir, config.unmatchedDir].filter((dir): dir is string => dir !== undefined),
  });
  incomingReport.listed = listing.files.length;
  incomingReport.waiting += listing.tooYoung;
  const delivered = await ledger.deliveredDestinations(listing.files);
  if (!input.dryRun && listing.complete && !input.stopSignal.aborted) {
    const pruned = await ledger.forgetDeliveriesExcept(listing.files);
    if (pruned > 0) log.debug({ pruned }, 'forgot deliveries of files no longer in incoming');
  }
  if (!input.dryRun) await Promise.all(states.map((state) => prepareDestination(state, config, log)));

  await Promise.all(
    listing.files.map(async (file) => {
      const matching = states.filter((state) => state.destination.enabled && state.filter(file.relPath));
      if (matching.length === 0) {
        await handleUnmatched(input, file, incomingReport);
        return;
      }
      const already = delivered.get(incomingFileId(file)) ?? new Set<string>();
      const missing = matching.filter((state) => !already.has(state.destination.name));
      for (const state of matching) {
        state.report.listed += 1;
        if (already.has(state.destination.name)) state.report.alreadyDone += 1;
      }
      if (input.dryRun) {
        for (const state of missing)
          input.onPlan?.(
            `would copy ${file.localPath} → ${state.destination.name}:${targetPath(state, file)}`,
          );
        input.onPlan?.(
          `would ${config.doneDir ? `move ${file.localPath} to ${config.doneDir}` : `remove ${file.localPath}`} once delivered`,
        );
        incomingReport.waiting += 1;
        return;
      }
      const results = await Promise.all(
        missing.map((state) => input.limit(() => deliver(input, state, file))),
      );
      if (results.every(Boolean)) {
        const released = await releaseIncomingFile({ config, local: input.local, ledger, file, log }).catch(
          (err: unknown) => {
            const line = formatErrorLine(
              toSyncError(err, { op: 'remove from incoming', path: file.localPath }),
            );
            noteFileError(incomingReport, line);
            log.error({ path: file.localPath, err }, `cannot release a delivered file: ${line}`);
            return false;
          },
        );
        if (released) incomingReport.done += 1;
        else incomingReport.waiting += 1;
      } else {
        incomingReport.waiting += 1;
      }
    }),
  );

  const endMs = now();
  incomingReport.durationMs = endMs - startedMs;
  for (const state of states) {
    state.report.durationMs = endMs - startedMs;
    if (state.down) state.report.error = formatErrorLine(state.down);
    logNotableSkips(log, state.report);
  }
  logNotableSkips(log, incomingReport);
  return [...states.map((state) => state.report), incomingReport];
}

/** Creates a destination's folder at the start of a pass; a destination that cannot be made is down for the pass. */
async function prepareDestination(state: DestinationState, config: CopierConfig, log: Logger): Promise<void> {
  if (!state.destination.enabled) return;
  try {
    await state.storage.mkdirp(
      state.destination.path,
      config.dirMode === undefined ? {} : { mode: config.dirMode },
    );
  } catch (err) {
    markDown(
      state,
      toSyncError(err, {
        op: 'create destination folder',
        path: state.destination.path,
        destination: state.destination.name,
        host: state.storage.label,
      }),
      log,
    );
  }
}

/** Copies one file to one destination; true when the destination now holds it (or keeps its own on `skip`). */
async function deliver(input: CopyPassInput, state: DestinationState, file: IncomingFile): Promise<boolean> {
  const { config, ledger, log } = input;
  const { destination, storage, report } = state;
  if (state.down || input.stopSignal.aborted) {
    report.waiting += 1;
    return false;
  }
  const dstPath = targetPath(state, file);
  if (destination.minFreeSpaceBytes > 0) {
    const room = await diskFree({
      storage,
      path: destination.path,
      reserveBytes: destination.minFreeSpaceBytes,
      inFlightBytes: state.inFlightBytes,
    }).catch(() => null);
    if (room !== null && room < file.sizeBytes) {
      markDown(
        state,
        new SyncError(
          'E_DISK_FULL',
          `not enough free space at destination ${destination.name} for ${file.relPath} (${formatSize(file.sizeBytes)})`,
          {
            path: destination.path,
            destination: destination.name,
            hint: `free space there (min_free_space keeps ${formatSize(destination.minFreeSpaceBytes)} free); files wait in incoming`,
          },
        ),
        log,
      );
      report.waiting += 1;
      return false;
    }
  }
  state.inFlightBytes += file.sizeBytes;
  const fileProgress = input.progress?.fileStarted(`${destination.name}/${file.relPath}`, file.sizeBytes);
  try {
    const copied = await retryWithBackoff(
      () =>
        copyFile({
          srcPath: file.localPath,
          src: { sizeBytes: file.sizeBytes, mtimeMs: file.mtimeMs },
          dst: storage,
          dstPath,
          onConflict: destination.onConflict,
          verify: destination.verify,
          ...(destination.kind === 'local' ? { link: destination.link } : {}),
          preserveMtime: destination.preserveMtime,
          ...(config.fileMode !== undefined ? { fileMode: config.fileMode } : {}),
          ...(config.dirMode !== undefined ? { dirMode: config.dirMode } : {}),
          signal: input.abortSignal,
        }),
      {
        retries: destination.kind === 'sftp' ? destination.sftp.retries : 0,
        baseDelayMs: 1_000,
        maxDelayMs: 30_000,
        signal: input.abortSignal,
        onRetry: (err, attempt, delayMs) =>
          log.warn(
            { destination: destination.name, path: file.relPath, attempt, delayMs, err },
            `copy failed, retrying: ${formatErrorLine(err)}`,
          ),
      },
    );
    await ledger.recordDelivery({
      relPath: file.relPath,
      sizeBytes: file.sizeBytes,
      mtimeMs: file.mtimeMs,
      destination: destination.name,
      dstPath: copied.dstPath,
      ...(copied.sha256 !== undefined ? { sha256: copied.sha256 } : {}),
      deliveredAtMs: Date.now(),
    });
    fileProgress?.done(true);
    if (copied.outcome === 'skipped-conflict') {
      report.skipped += 1;
      noteSkip(report, 'a different file already has that name (on_conflict: skip keeps it)', file.relPath);
    } else if (copied.outcome === 'already-present') {
      report.alreadyDone += 1;
    } else {
      report.done += 1;
      report.bytes += file.sizeBytes;
      log.info(
        {
          destination: destination.name,
          relPath: file.relPath,
          dstPath: copied.dstPath,
          outcome: copied.outcome,
          sizeBytes: file.sizeBytes,
        },
        `delivered ${file.relPath} → ${destination.name}:${copied.dstPath}`,
      );
    }
    return true;
  } catch (err) {
    fileProgress?.done(false);
    const error = toSyncError(err, {
      destination: destination.name,
      path: file.localPath,
      dstPath,
      host: storage.label,
    });
    if (error.code === 'E_ABORTED' || input.abortSignal.aborted) {
      report.waiting += 1;
    } else if (DESTINATION_DOWN_CODES.has(error.code)) {
      markDown(state, error, log);
      report.waiting += 1;
    } else {
      noteFileError(report, formatErrorLine(error));
      log.error(
        { destination: destination.name, relPath: file.relPath, err: error },
        `cannot deliver: ${formatErrorLine(error)}`,
      );
    }
    return false;
  } finally {
    state.inFlightBytes -= file.sizeBytes;
  }
}

/** The first destination-wide failure of a pass is logged once; the rest of its files wait. */
function markDown(state: DestinationState, error: SyncError, log: Logger): void {
  if (state.down) return;
  state.down = error;
  log.error(
    { destination: state.destination.name, err: error },
    `destination ${state.destination.name} failed, its files wait in incoming: ${formatErrorLine(error)}`,
  );
}

async function handleUnmatched(input: CopyPassInput, file: IncomingFile, report: PassReport): Promise<void> {
  const { config, log } = input;
  report.skipped += 1;
  if (config.unmatched === 'move' && config.unmatchedDir !== undefined) {
    if (input.dryRun) {
      input.onPlan?.(`would move unmatched ${file.localPath} to ${config.unmatchedDir}`);
      return;
    }
    try {
      const moved = await moveFile({
        storage: input.local,
        fromPath: file.localPath,
        toPath: joinInside(config.unmatchedDir, file.relPath),
        expected: file,
        ...(config.dirMode !== undefined ? { dirMode: config.dirMode } : {}),
      });
      log.warn(
        { relPath: file.relPath, ...(moved.outcome === 'moved' ? { toPath: moved.toPath } : {}) },
        `no destination matches ${file.relPath}: moved to unmatched_dir`,
      );
    } catch (err) {
      noteFileError(
        report,
        formatErrorLine(toSyncError(err, { op: 'move unmatched', path: file.localPath })),
      );
    }
    return;
  }
  const id = incomingFileId(file);
  if (!input.reportedUnmatched.has(id)) {
    input.reportedUnmatched.add(id);
    log.warn(
      { relPath: file.relPath },
      `no destination matches ${file.relPath}: it stays in incoming (set unmatched: move, or widen a destination's include)`,
    );
  }
}

function targetPath(state: DestinationState, file: IncomingFile): string {
  return state.destination.kind === 'local'
    ? joinInside(state.destination.path, file.relPath)
    : posix.join(state.destination.path, file.relPath);
}
