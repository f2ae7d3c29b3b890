import { posix } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { type CopyFileResult, copyFile } from '../actions/copy-file.js';
import { diskFree } from '../actions/disk-free.js';
import { moveFile } from '../actions/move-file.js';
import { createSharedFolderSync, type SyncFolder } from '../actions/shared-folder-sync.js';
import { createPathFilter, type PathFilter } from '../actions/path-filter.js';
import { joinInside } from '../actions/safe-relative-path.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import { isTemporaryName } from '../actions/temporary-name.js';
import type { CopierConfig, DestinationConfig } from '../config/index.js';
import { formatSize } from '../config/index.js';
import {
  formatErrorLine,
  isRetryable,
  isTargetDown,
  retryWithBackoff,
  SyncError,
  toSyncError,
} from '../errors/index.js';
import { incomingFileId, type Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';
import { type IncomingFile, listIncoming } from './list-incoming.js';
import { emptyReport, logNotableSkips, noteFileError, noteSkip, type PassReport } from './pass-report.js';
import { recoverReleaseLeftovers, releaseIncomingFile } from './release-incoming-file.js';
import { runEach } from './run-each.js';
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
  /**
   * Destinations that may hold leftover temporaries (every one when the process starts:
   * a crash leaves them; later, those where a copy failed or was stopped). The pass
   * removes them before its first copy there and takes the name out; it puts it back
   * after a failed copy.
   */
  destinationsToClean: Set<string>;
  now?: () => number;
}

/** Name of the summary row for incoming itself (files released, unmatched, waiting). */
export const INCOMING_ROW = '(incoming)';

interface DestinationState extends DestinationHandle {
  filter: PathFilter;
  report: PassReport;
  down?: SyncError;
  inFlightBytes: number;
  /** The destination's folder exists and its leftovers are gone (or it is down): copies may start. */
  ready: Promise<void>;
  /** `ready` has settled: copies to it start at once. */
  readySettled: boolean;
  /** Folder syncs after renames, shared by every copy of the pass (one sync serves many files). */
  syncFolder: SyncFolder;
}

/**
 * One pass of the copier: every file in incoming goes to every destination whose
 * filters match, and leaves incoming only once each of them holds a verified copy.
 * Deliveries are recorded per destination, so a restart or a failing destination
 * never re-copies to destinations that already have the file.
 */
export async function runCopyPass(input: CopyPassInput): Promise<PassReport[]> {
  const { log } = input;
  const now = input.now ?? Date.now;
  const startedMs = now();
  const incomingReport = emptyReport(INCOMING_ROW);
  const syncFolder = createSharedFolderSync();
  const states: DestinationState[] = input.destinations.map((handle) => ({
    ...handle,
    filter: createPathFilter(handle.destination.include, handle.destination.exclude),
    report: emptyReport(handle.destination.name),
    inFlightBytes: 0,
    ready: Promise.resolve(),
    readySettled: true,
    syncFolder,
  }));
  // Each destination gets ready on its own: one slow to connect never holds up the others' copies.
  if (!input.dryRun) {
    for (const state of states) {
      state.readySettled = false;
      state.ready = prepareDestination(state, states, input).finally(() => {
        state.readySettled = true;
      });
    }
  }
  try {
    await copyListedFiles(input, states, incomingReport, now, syncFolder);
  } finally {
    // Also when listing failed: no destination work may outlive the pass.
    await Promise.all(states.map((state) => state.ready));
  }
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

async function copyListedFiles(
  input: CopyPassInput,
  states: readonly DestinationState[],
  incomingReport: PassReport,
  now: () => number,
  syncFolder: SyncFolder,
): Promise<void> {
  const { config, log, ledger } = input;
  if (!input.dryRun) {
    await input.local.mkdirp(config.incoming, config.dirMode === undefined ? {} : { mode: config.dirMode });
  } else if (!(await statIfExists(input.local, config.incoming))) {
    input.onPlan?.(`${config.incoming} does not exist yet: nothing to copy`);
    return;
  }
  const listOnce = () =>
    listIncoming({
      local: input.local,
      incoming: config.incoming,
      minAgeMs: config.minAgeMs,
      nowMs: now(),
      log,
      signal: input.stopSignal,
      skipDirs: [config.doneDir, config.unmatchedDir].filter((dir): dir is string => dir !== undefined),
    });
  let listing = await listOnce();
  if (listing.releaseLeftovers.length > 0 && !input.dryRun) {
    // Rare (a crash mid-release): put them back, then list again so they are released this pass.
    await recoverReleaseLeftovers({ local: input.local, leftoverPaths: listing.releaseLeftovers, log });
    listing = await listOnce();
  }
  incomingReport.listed = listing.files.length;
  incomingReport.waiting += listing.tooYoung;
  const delivered = await ledger.deliveredDestinations(listing.files);
  if (!input.dryRun && listing.complete && !input.stopSignal.aborted) {
    const pruned = await ledger.forgetDeliveriesExcept(listing.files);
    if (pruned > 0) log.debug({ pruned }, 'forgot deliveries of files no longer in incoming');
  }
  const finishFile = async (file: IncomingFile, deliveredToAll: boolean): Promise<void> => {
    if (!deliveredToAll) {
      incomingReport.waiting += 1;
      return;
    }
    const released = await releaseIncomingFile({
      config,
      local: input.local,
      ledger,
      file,
      log,
      syncFolder,
    }).catch((err: unknown) => {
      const line = formatErrorLine(toSyncError(err, { op: 'remove from incoming', path: file.localPath }));
      noteFileError(incomingReport, line);
      log.error({ path: file.localPath, err }, `cannot release a delivered file: ${line}`);
      return false;
    });
    if (released) incomingReport.done += 1;
    else incomingReport.waiting += 1;
  };
  // Copies to a destination still getting ready (connecting, say) wait until every file had its
  // copies to the ready ones: workers waiting on it would hold up every other destination.
  const deferred: { file: IncomingFile; waitingFor: DestinationState[]; deliveredSoFar: boolean }[] = [];
  const workers = config.concurrencyLimit * 2;
  // Twice the cap: a file's release from incoming overlaps the next file's copies.
  await runEach(listing.files, workers, async (file) => {
    const matchingAny = states.filter((state) => state.filter(file.relPath));
    if (matchingAny.length === 0) {
      await handleUnmatched(input, file, incomingReport);
      return;
    }
    const matching = matchingAny.filter((state) => state.destination.enabled);
    if (matching.length === 0) {
      // Only disabled destinations want it: it waits for them, it is not "unmatched".
      incomingReport.waiting += 1;
      return;
    }
    const already = delivered.get(incomingFileId(file)) ?? new Set<string>();
    const missing = matching.filter((state) => !already.has(state.destination.name));
    for (const state of matching) {
      state.report.listed += 1;
      if (already.has(state.destination.name)) state.report.alreadyDone += 1;
      else state.report.selected += 1;
    }
    if (input.dryRun) {
      for (const state of missing)
        input.onPlan?.(`would copy ${file.localPath} → ${state.destination.name}:${targetPath(state, file)}`);
      input.onPlan?.(
        `would ${config.doneDir ? `move ${file.localPath} to ${config.doneDir}` : `remove ${file.localPath}`} once delivered`,
      );
      incomingReport.waiting += 1;
      return;
    }
    const waitingFor = missing.filter((state) => !state.readySettled);
    const results = await Promise.all(
      missing.filter((state) => state.readySettled).map((state) => deliver(input, state, file)),
    );
    if (waitingFor.length > 0) deferred.push({ file, waitingFor, deliveredSoFar: results.every(Boolean) });
    else await finishFile(file, results.every(Boolean));
  });
  await runEach(deferred, workers, async ({ file, waitingFor, deliveredSoFar }) => {
    const results = await Promise.all(
      waitingFor.map(async (state) => {
        await state.ready;
        return deliver(input, state, file);
      }),
    );
    await finishFile(file, deliveredSoFar && results.every(Boolean));
  });
}

/**
 * Creates a destination's folder at the start of a pass and removes temporaries an
 * earlier crash or failed copy left there; a destination that cannot be made is down
 * for the pass.
 */
async function prepareDestination(
  state: DestinationState,
  others: readonly DestinationState[],
  input: CopyPassInput,
): Promise<void> {
  const { config, log } = input;
  const { destination, storage } = state;
  if (!destination.enabled) return;
  try {
    await storage.mkdirp(destination.path, config.dirMode === undefined ? {} : { mode: config.dirMode });
  } catch (err) {
    markDown(
      state,
      toSyncError(err, {
        op: 'create destination folder',
        path: destination.path,
        destination: destination.name,
        host: storage.label,
      }),
      log,
    );
    return;
  }
  if (!input.destinationsToClean.has(destination.name)) return;
  let complete = true;
  try {
    const removed = await removeLeftoverTemporaries(state, others, input, () => {
      complete = false;
    });
    if (removed.length > 0) {
      log.info(
        { destination: destination.name, count: removed.length, examples: removed.slice(0, 5) },
        `removed ${removed.length} leftover temporaries at destination ${destination.name}`,
      );
    }
  } catch (err) {
    complete = false;
    if (!input.stopSignal.aborted) {
      log.warn(
        { destination: destination.name, err },
        `cannot look for leftover temporaries at destination ${destination.name}: ${formatErrorLine(err)}`,
      );
    }
  }
  if (complete) input.destinationsToClean.delete(destination.name);
}

/**
 * Removes the temporaries (`.name….part`) a crash or a failed copy left below a
 * destination; returns their paths. Another destination's folder nested inside this
 * one is not walked: copies to it may already be in flight.
 */
async function removeLeftoverTemporaries(
  state: DestinationState,
  others: readonly DestinationState[],
  input: CopyPassInput,
  onIncomplete: () => void,
): Promise<string[]> {
  const { destination, storage } = state;
  const nested = new Set(
    others
      .filter((other) => other !== state && other.storage.label === storage.label)
      .map((other) => posix.relative(destination.path, other.destination.path))
      .filter((relPath) => relPath !== '' && !relPath.startsWith('..') && !posix.isAbsolute(relPath)),
  );
  const removed: string[] = [];
  const warn = (error: unknown, path: string): void => {
    onIncomplete();
    input.log.warn(
      { destination: destination.name, path, err: error },
      `cannot clean up leftover temporaries at destination ${destination.name}: ${formatErrorLine(error)}`,
    );
  };
  const entries = storage.list(destination.path, {
    recursive: true,
    signal: input.stopSignal,
    skipDir: (relPath) => nested.has(relPath),
    onError: (error, relPath) => warn(error, posix.join(destination.path, relPath)),
  });
  for await (const entry of entries) {
    if (entry.type === 'dir' || !isTemporaryName(entry.name)) continue;
    const path = posix.join(destination.path, entry.relPath);
    try {
      await storage.remove(path);
      removed.push(path);
    } catch (err) {
      if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND')) warn(err, path);
    }
  }
  return removed;
}

/**
 * Copies one file to one destination, retried on transient faults; true when the
 * destination now holds it (or keeps its own on `skip`). Each attempt takes a slot of
 * the shared cap; the wait before a retry does not hold one.
 */
async function deliver(input: CopyPassInput, state: DestinationState, file: IncomingFile): Promise<boolean> {
  const { ledger, log } = input;
  const { destination, storage, report } = state;
  const dstPath = targetPath(state, file);
  try {
    const copied = await retryWithBackoff(() => input.limit(() => copyOnce(input, state, file, dstPath)), {
      retries: destination.kind === 'sftp' ? destination.sftp.retries : 0,
      baseDelayMs: 1_000,
      maxDelayMs: 30_000,
      signal: input.abortSignal,
      // Once the destination is down (another copy found it so), waiting to retry only delays the
      // pass; and a failure to connect at all comes after the storage's own connect retries.
      shouldRetry: (err) => state.down === undefined && !isConnectFailure(err) && isRetryable(err),
      onRetry: (err, attempt, delayMs) => {
        // The failed attempt may not have been able to remove its temporary.
        input.destinationsToClean.add(destination.name);
        log.warn(
          { destination: destination.name, path: file.relPath, attempt, delayMs, err },
          `copy failed, retrying: ${formatErrorLine(err)}`,
        );
      },
    });
    if (copied === undefined) {
      report.waiting += 1;
      return false;
    }
    await ledger.recordDelivery({
      relPath: file.relPath,
      sizeBytes: file.sizeBytes,
      mtimeMs: file.mtimeMs,
      destination: destination.name,
      dstPath: copied.dstPath,
      ...(copied.sha256 !== undefined ? { sha256: copied.sha256 } : {}),
      deliveredAtMs: Date.now(),
    });
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
    // copyFile removes its temporary, unless the destination failed under it: look next pass.
    input.destinationsToClean.add(destination.name);
    const error = toSyncError(err, {
      destination: destination.name,
      path: file.localPath,
      dstPath,
      host: storage.label,
    });
    if (error.code === 'E_ABORTED' || input.abortSignal.aborted) {
      report.waiting += 1;
    } else if (isTargetDown(error.code) || (await folderReplaced(storage, destination.path))) {
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
  }
}

/**
 * One attempt, holding a slot: undefined when it did not start (the destination is
 * down or out of room, or the pass is stopping).
 */
async function copyOnce(
  input: CopyPassInput,
  state: DestinationState,
  file: IncomingFile,
  dstPath: string,
): Promise<CopyFileResult | undefined> {
  const { config } = input;
  const { destination, storage } = state;
  if (state.down || input.stopSignal.aborted) return undefined;
  if (!(await hasRoomFor(input, state, file))) return undefined;
  state.inFlightBytes += file.sizeBytes;
  const fileProgress = input.progress?.fileStarted(`${destination.name}/${file.relPath}`, file.sizeBytes);
  try {
    const copied = await copyFile({
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
      syncFolder: state.syncFolder,
    });
    fileProgress?.done(true);
    if (input.log.isLevelEnabled('trace'))
      input.log.trace(
        {
          destination: destination.name,
          path: file.localPath,
          dstPath: copied.dstPath,
          outcome: copied.outcome,
        },
        'copy to destination ended',
      );
    return copied;
  } catch (err) {
    fileProgress?.done(false);
    throw err;
  } finally {
    state.inFlightBytes -= file.sizeBytes;
  }
}

/** Checks `min_free_space`; a destination without room is down for the pass (its files wait). */
async function hasRoomFor(
  input: CopyPassInput,
  state: DestinationState,
  file: IncomingFile,
): Promise<boolean> {
  const { destination, storage } = state;
  if (destination.minFreeSpaceBytes <= 0) return true;
  const room = await diskFree({
    storage,
    path: destination.path,
    reserveBytes: destination.minFreeSpaceBytes,
    inFlightBytes: state.inFlightBytes,
  }).catch(() => null);
  if (room === null || room >= file.sizeBytes) return true;
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
    input.log,
  );
  return false;
}

/** The storage could not even connect (after its own retries): the destination is unreachable now. */
function isConnectFailure(err: unknown): boolean {
  return err instanceof SyncError && err.context.op === 'connect';
}

/**
 * The destination's own folder is now something else (a file put in its place
 * mid-pass): no file can go there this pass, so it is down like a denied one, not a
 * failure per file.
 */
async function folderReplaced(storage: Storage, path: string): Promise<boolean> {
  const found = await storage.stat(path).catch(() => undefined);
  return found !== undefined && found.type !== 'dir';
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
