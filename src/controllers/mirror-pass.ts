import { posix } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { hashStream } from '../actions/hash-stream.js';
import { fileNameTimestamp } from '../actions/numbered-name.js';
import type { MirrorConfig, MirrorEndpoint, MirrorJobConfig } from '../config/index.js';
import { formatErrorLine, SyncError, toSyncError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Storage, StorageStat } from '../storage/storage.js';
import { applyMirrorPlan, type MirrorCounts, pathIn } from './mirror-apply.js';
import { listSide, type MirrorEntry, type SideListing } from './mirror-listing.js';
import { deleteLimit, type MirrorPlan, planMirror } from './mirror-plan.js';
import { emptyReport, logNotableSkips, noteFileError, noteSkip, type PassReport } from './pass-report.js';

export interface MirrorJobHandle {
  job: MirrorJobConfig;
  source: Storage;
  replica: Storage;
}

export interface MirrorPassInput {
  config: MirrorConfig;
  jobs: readonly MirrorJobHandle[];
  log: Logger;
  limit: LimitFunction;
  dryRun: boolean;
  stopSignal: AbortSignal;
  abortSignal: AbortSignal;
  /** Dry run: one line per operation that would be made. */
  onPlan?: (line: string) => void;
  now?: () => number;
}

/** Paths named in a refusal's message; the rest go to the log, one line each. */
const EXAMPLES_IN_MESSAGE = 5;
/** Would-be removals logged at warn when a pass is refused; beyond, at debug (all-debug.log). */
const WOULD_REMOVE_AT_WARN = 100;

/** One pass of every job, side by side under the shared p-limit cap; one report per job. */
export function runMirrorPass(input: MirrorPassInput): Promise<PassReport[]> {
  const passStartedMs = (input.now ?? Date.now)();
  return Promise.all(input.jobs.map((handle) => runMirrorJob(input, handle, passStartedMs)));
}

/**
 * One job: both sides listed completely, the plan made, the safety rules decided on
 * the whole plan — and only then is anything touched. A refusal (ends that nest, a
 * missing, empty, unreachable or half-listed source, too many removals) is the job's
 * error for this pass, with the replica exactly as it was.
 */
async function runMirrorJob(
  input: MirrorPassInput,
  handle: MirrorJobHandle,
  passStartedMs: number,
): Promise<PassReport> {
  const { log } = input;
  const { job } = handle;
  const now = input.now ?? Date.now;
  const report = emptyReport(job.name);
  const counts: MirrorCounts = {
    created: 0,
    updated: 0,
    copied: 0,
    removed: 0,
    backedUp: 0,
    foldersCreated: 0,
    foldersRemoved: 0,
  };
  let unchanged = 0;
  try {
    const prepared = await prepareJob(input, handle, report);
    unchanged = prepared.plan.unchanged;
    report.alreadyDone = prepared.plan.unchanged;
    if (input.dryRun) describePlan(input, job, prepared);
    else if (!input.stopSignal.aborted)
      await applyJob(input, handle, prepared, report, counts, passStartedMs);
  } catch (err) {
    const error = toSyncError(err, { job: job.name });
    if (error.code === 'E_ABORTED' || input.stopSignal.aborted) {
      log.debug({ job: job.name, err: error }, `${job.name}: pass stopped`);
    } else {
      report.error = formatErrorLine(error);
      log.error({ job: job.name, err: error }, `${job.name}: ${report.error}`);
    }
  }
  report.durationMs = now() - passStartedMs;
  logNotableSkips(log, report);
  log.info(
    {
      event: 'mirror_summary',
      job: job.name,
      ...counts,
      unchanged,
      failed: report.failed,
      waiting: report.waiting,
      bytes: report.bytes,
      durationMs: report.durationMs,
      ...(input.dryRun ? { dryRun: true } : {}),
    },
    `${job.name}: ${counts.created} created, ${counts.updated} updated, ${counts.copied} links copied, ${counts.removed} removed, ${counts.backedUp} backed up, ${counts.foldersCreated} folders created, ${counts.foldersRemoved} folders removed, ${unchanged} unchanged`,
  );
  return report;
}

/** Leftover temporaries, the replica folder itself when missing, then the plan. */
async function applyJob(
  input: MirrorPassInput,
  handle: MirrorJobHandle,
  prepared: PreparedJob,
  report: PassReport,
  counts: MirrorCounts,
  passStartedMs: number,
): Promise<void> {
  const { job } = handle;
  const { config, log } = input;
  await cleanTemporaries(handle, prepared.temporaries, log);
  if (prepared.replicaMissing) {
    await handle.replica.mkdirp(
      job.replica.path,
      config.dirMode === undefined ? {} : { mode: config.dirMode },
    );
    counts.foldersCreated += 1;
    report.done += 1;
    log.info(
      { event: 'folder_created', job: job.name, relPath: '.' },
      `${job.name}: folder created ${job.replica.path}`,
    );
  }
  const applied = await applyMirrorPlan({
    job,
    source: handle.source,
    replica: handle.replica,
    plan: prepared.plan,
    sourceSha256: prepared.sourceSha256,
    ...(prepared.noDeletions !== undefined ? { noDeletions: prepared.noDeletions } : {}),
    limit: input.limit,
    log,
    report,
    counts,
    backupStamp: fileNameTimestamp(passStartedMs),
    ...(config.fileMode !== undefined ? { fileMode: config.fileMode } : {}),
    ...(config.dirMode !== undefined ? { dirMode: config.dirMode } : {}),
    retries: retriesOf(job),
    stopSignal: input.stopSignal,
    abortSignal: input.abortSignal,
  });
  if (applied.down) report.error ??= formatErrorLine(applied.down);
}

interface PreparedJob {
  plan: MirrorPlan;
  /** Why this pass removes nothing, when it must not. */
  noDeletions?: string;
  replicaMissing: boolean;
  sourceSha256: Map<string, string>;
  temporaries: string[];
}

/** Everything read-only: checks, both listings, checksums, the plan and its verdict. */
async function prepareJob(
  input: MirrorPassInput,
  handle: MirrorJobHandle,
  report: PassReport,
): Promise<PreparedJob> {
  const { job, source, replica } = handle;
  const { log } = input;
  await checkEndsApartOnDisk(handle);
  await requireSourceFolder(handle);
  const replicaRoot = await statFollowing(replica, job.replica.path);
  if (replicaRoot && replicaRoot.type !== 'dir') {
    throw safetyError(
      job,
      `the replica ${describeEnd(replica, job.replica)} is not a folder: nothing was changed`,
      'point replica at a folder (it is created when missing)',
    );
  }
  const listOptions = {
    include: job.include,
    exclude: job.exclude,
    links: job.links,
    signal: input.stopSignal,
  };
  // Both sides at once: each listing waits mostly on its own file system or server.
  const [sourceListing, replicaListing] = await Promise.all([
    listSide({ storage: source, rootPath: job.source.path, side: 'source', ...listOptions }).catch(
      (err: unknown) => {
        throw unreachable(job, source, job.source, err);
      },
    ),
    replicaRoot
      ? listSide({ storage: replica, rootPath: job.replica.path, side: 'replica', ...listOptions })
      : Promise.resolve<SideListing>({ entries: new Map(), ignored: [], temporaries: [], unreadable: [] }),
  ]);
  if (replicaListing.unreadable.length > 0) {
    const first = replicaListing.unreadable[0];
    throw safetyError(
      job,
      `${replicaListing.unreadable.length} folder(s) of the replica cannot be read (first: ${first?.relPath}: ${first?.error}): nothing was changed`,
      'give this user access to the whole replica',
    );
  }
  for (const ignored of sourceListing.ignored) {
    if (ignored.reason === undefined) continue;
    report.skipped += 1;
    noteSkip(report, ignored.reason, ignored.relPath);
  }
  report.listed = sourceListing.entries.size;

  const sourceSha256 = new Map<string, string>();
  const contentDiffers =
    job.compare === 'checksum'
      ? await compareChecksums(
          input,
          handle,
          sourceListing.entries,
          replicaListing.entries,
          sourceSha256,
          report,
        )
      : undefined;
  const plan = planMirror({
    source: sourceListing.entries,
    replica: replicaListing.entries,
    protectedPaths: new Set(
      [...sourceListing.ignored, ...replicaListing.ignored].map((item) => item.relPath),
    ),
    ...(contentDiffers ? { contentDiffers } : {}),
    mtimeResolution: source.kind === 'sftp' || replica.kind === 'sftp' ? 's' : 'ms',
    preserveMode: job.preserveMode,
    delete: job.delete,
  });
  for (const blocked of plan.blocked) {
    report.skipped += 1;
    noteSkip(report, blocked.reason, blocked.relPath);
  }
  report.selected =
    plan.before.dirs.length +
    plan.before.writes.length +
    plan.touches.length +
    plan.removals.length +
    plan.dirRemovals.length +
    plan.after.dirs.length +
    plan.after.writes.length;

  const removes = plan.removals.length + plan.dirRemovals.length > 0;
  let noDeletions: string | undefined;
  if (removes && sourceListing.unreadable.length > 0) {
    const first = sourceListing.unreadable[0];
    noDeletions = `${sourceListing.unreadable.length} folder(s) of the source cannot be read (first: ${first?.relPath}: ${first?.error}): nothing is removed from the replica in this pass`;
    report.error = `E_SAFETY: ${noDeletions}`;
    report.waiting += plan.removals.length + plan.dirRemovals.length + plan.after.writes.length;
    log.error({ job: job.name, unreadable: sourceListing.unreadable }, `${job.name}: ${noDeletions}`);
  }
  if (removes && noDeletions === undefined) {
    if (plan.sourceFiles === 0 && plan.replicaFiles > 0) {
      throw safetyError(
        job,
        `the source ${describeEnd(source, job.source)} is empty while the replica holds ${plan.replicaFiles} file(s): refusing to empty the replica; nothing was changed`,
        'check the source is mounted and filled; to empty the replica on purpose, remove its files by hand',
      );
    }
    const limit = deleteLimit(job.maxDelete, plan.replicaFiles);
    if (plan.removals.length > limit) refuseTooManyRemovals(input, job, plan, limit);
  }
  return {
    plan,
    ...(noDeletions !== undefined ? { noDeletions } : {}),
    replicaMissing: replicaRoot === undefined,
    sourceSha256,
    temporaries: replicaListing.temporaries,
  };
}

/** max_delete: the pass stops before touching anything, and says what it would have removed. */
function refuseTooManyRemovals(
  input: MirrorPassInput,
  job: MirrorJobConfig,
  plan: MirrorPlan,
  limit: number,
): never {
  const paths = plan.removals.map((entry) => entry.relPath);
  paths.forEach((relPath, index) => {
    const level = index < WOULD_REMOVE_AT_WARN ? 'warn' : 'debug';
    input.log[level](
      { event: 'would_remove', job: job.name, relPath },
      `${job.name}: would remove ${relPath}`,
    );
  });
  const setting = job.maxDelete.kind === 'count' ? `${job.maxDelete.count}` : `${job.maxDelete.percent}%`;
  const examples = paths.slice(0, EXAMPLES_IN_MESSAGE).map((path) => JSON.stringify(path));
  throw safetyError(
    job,
    `this pass would remove ${paths.length} of the replica's ${plan.replicaFiles} file(s), more than max_delete (${setting} = ${limit}): nothing was changed; it would have removed ${examples.join(', ')}${paths.length > examples.length ? ` and ${paths.length - examples.length} more (each logged as would_remove)` : ''}`,
    'check the source; if these removals are intended, raise max_delete for one run',
  );
}

/** compare: checksum — same-size pairs are read on both sides; the sha256 of each source file is kept to verify its copy. */
async function compareChecksums(
  input: MirrorPassInput,
  handle: MirrorJobHandle,
  source: ReadonlyMap<string, MirrorEntry>,
  replica: ReadonlyMap<string, MirrorEntry>,
  sourceSha256: Map<string, string>,
  report: PassReport,
): Promise<Set<string>> {
  const { job } = handle;
  const differs = new Set<string>();
  const pairs = [...source.values()].filter((entry) => {
    const other = replica.get(entry.relPath);
    return entry.type === 'file' && other?.type === 'file' && other.sizeBytes === entry.sizeBytes;
  });
  const hashOf = async (storage: Storage, root: string, relPath: string): Promise<string> => {
    const stream = await storage.openRead(pathIn(storage, root, relPath), { signal: input.abortSignal });
    return (await hashStream(stream)).sha256;
  };
  await Promise.all(
    pairs.map((entry) =>
      input.limit(async () => {
        if (input.stopSignal.aborted) return;
        try {
          const [sourceHash, replicaHash] = await Promise.all([
            hashOf(handle.source, job.source.path, entry.relPath),
            hashOf(handle.replica, job.replica.path, entry.relPath),
          ]);
          sourceSha256.set(entry.relPath, sourceHash);
          if (sourceHash !== replicaHash) differs.add(entry.relPath);
        } catch (err) {
          // Unknown content is left as it is for this pass.
          const line = formatErrorLine(
            toSyncError(err, { op: 'checksum', path: entry.relPath, job: job.name }),
          );
          noteFileError(report, line);
          input.log.error(
            { job: job.name, relPath: entry.relPath },
            `${job.name}: cannot compare ${entry.relPath}: ${line}`,
          );
        }
      }),
    ),
  );
  if (input.stopSignal.aborted)
    throw new SyncError('E_ABORTED', 'stopped while comparing checksums', { job: job.name });
  return differs;
}

/** The folders as the disk resolves them (links included): a replica may not sit in its source, nor hold it. */
async function checkEndsApartOnDisk(handle: MirrorJobHandle): Promise<void> {
  const { job, source, replica } = handle;
  if (source.kind !== 'local' || replica.kind !== 'local') return;
  const sourceReal = await resolveExisting(source, job.source.path);
  const replicaReal = await resolveExisting(replica, job.replica.path);
  const ends: [string, string][] = [
    ['replica', replicaReal],
    ...(job.backupDir !== undefined
      ? [['backup_dir', await resolveExisting(replica, job.backupDir)] as [string, string]]
      : []),
  ];
  for (const [label, real] of ends) {
    if (isInsideLocal(real, sourceReal) || isInsideLocal(sourceReal, real)) {
      const where =
        real === sourceReal
          ? 'is the source'
          : isInsideLocal(real, sourceReal)
            ? 'is inside the source'
            : 'contains the source';
      throw safetyError(
        job,
        `the ${label} ${real} ${where} ${sourceReal} (links resolved): nothing was changed`,
        'use folders apart from each other',
      );
    }
  }
}

/** Real path of a folder, or of its nearest existing parent joined with the rest. */
async function resolveExisting(storage: Storage, path: string): Promise<string> {
  const missing: string[] = [];
  let current = path;
  for (;;) {
    try {
      return posix.join(await storage.realPath(current), ...missing.reverse());
    } catch (err) {
      const parent = posix.dirname(current);
      if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND') || parent === current) throw err;
      missing.push(posix.basename(current));
      current = parent;
    }
  }
}

async function requireSourceFolder(handle: MirrorJobHandle): Promise<void> {
  const { job, source } = handle;
  const stat = await statFollowing(source, job.source.path).catch((err: unknown) => {
    throw unreachable(job, source, job.source, err);
  });
  if (!stat) {
    throw safetyError(
      job,
      `the source ${describeEnd(source, job.source)} does not exist: nothing was changed (a missing source is never mirrored as an empty one)`,
      'check the path, and that its disk or share is mounted',
    );
  }
  if (stat.type !== 'dir') {
    throw safetyError(
      job,
      `the source ${describeEnd(source, job.source)} is not a folder: nothing was changed`,
      'point source at a folder',
    );
  }
}

async function statFollowing(storage: Storage, path: string): Promise<StorageStat | undefined> {
  try {
    return await storage.stat(path);
  } catch (err) {
    if (err instanceof SyncError && err.code === 'E_NOT_FOUND') return undefined;
    throw err;
  }
}

function unreachable(job: MirrorJobConfig, storage: Storage, end: MirrorEndpoint, err: unknown): SyncError {
  const error = toSyncError(err, { job: job.name, path: end.path, host: storage.label });
  if (error.code === 'E_ABORTED') return error;
  return new SyncError(
    error.code,
    `cannot read the source ${describeEnd(storage, end)}: ${error.message}; nothing was changed in the replica`,
    { ...error.context, job: job.name, cause: error },
  );
}

function safetyError(job: MirrorJobConfig, message: string, hint: string): SyncError {
  return new SyncError('E_SAFETY', message, { op: 'mirror', job: job.name, hint });
}

function describeEnd(storage: Storage, end: MirrorEndpoint): string {
  return storage.kind === 'local' ? end.path : `${storage.label}/${end.path.replace(/^\//, '')}`;
}

function isInsideLocal(child: string, parent: string): boolean {
  const rel = posix.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel));
}

function retriesOf(job: MirrorJobConfig): number {
  if (job.source.kind === 'sftp') return job.source.sftp.retries;
  if (job.replica.kind === 'sftp') return job.replica.sftp.retries;
  return 0;
}

async function cleanTemporaries(
  handle: MirrorJobHandle,
  temporaries: readonly string[],
  log: Logger,
): Promise<void> {
  for (const relPath of temporaries) {
    const path = pathIn(handle.replica, handle.job.replica.path, relPath);
    await handle.replica.remove(path).then(
      () =>
        log.debug(
          { job: handle.job.name, relPath },
          `${handle.job.name}: removed a leftover temporary ${relPath}`,
        ),
      (err: unknown) =>
        log.warn(
          { job: handle.job.name, relPath, err },
          `${handle.job.name}: cannot remove a leftover temporary ${relPath}`,
        ),
    );
  }
}

/** --dry-run: what the pass would do, one line per operation, in the order it would do it. */
function describePlan(input: MirrorPassInput, job: MirrorJobConfig, prepared: PreparedJob): void {
  const { plan, noDeletions, replicaMissing } = prepared;
  const say = (line: string) => input.onPlan?.(`${job.name}: would ${line}`);
  if (replicaMissing) say(`create the replica folder ${job.replica.path}`);
  const creations = (part: MirrorPlan['before']) => {
    for (const dir of part.dirs) say(`create folder ${dir.relPath}`);
    for (const write of part.writes) {
      if (write.source.type === 'link') say(`copy link ${write.relPath} → ${write.source.linkTarget ?? ''}`);
      else say(`${write.replaced ? 'update' : 'create'} ${write.relPath} (${write.source.sizeBytes} bytes)`);
    }
  };
  creations(plan.before);
  for (const touch of plan.touches)
    say(`update the ${touch.mode !== undefined ? 'mode' : 'mtime'} of ${touch.relPath}`);
  if (noDeletions !== undefined) return;
  const verb = job.backupDir !== undefined ? `move to ${job.backupDir}:` : 'remove';
  for (const entry of plan.removals) say(`${verb} ${entry.relPath}`);
  for (const dir of plan.dirRemovals) say(`remove folder ${dir.relPath}`);
  creations(plan.after);
}
