import pLimit from 'p-limit';
import type { MirrorConfig, MirrorEndpoint } from '../config/index.js';
import { runMirrorPass } from '../controllers/mirror-pass.js';
import { acquireStateLock, openSqliteLedger } from '../ledger/index.js';
import type { Logger } from '../log/index.js';
import { createLocalStorage, createSftpStorage, type Storage } from '../storage/index.js';
import { abortAfterGrace } from './abort-after-grace.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import { finishPass } from './pass-outcome.js';
import { type PassOutcome, runLoop } from './run-loop.js';
import { formatSummaryTable } from './summary-table.js';

const COMMAND = 'mirror-files';

/**
 * The mirror: one lock on `state_dir` (two mirror processes never work on it at
 * once), passes recorded in the ledger for `status`, one storage per SFTP end kept
 * across passes; passes on the interval or the cron schedule, never two at once.
 */
export async function runMirrorApp(context: AppContext<MirrorConfig>): Promise<PassOutcome> {
  const { config, log } = context;
  const lock = context.dryRun
    ? undefined
    : await acquireStateLock({ stateDir: config.stateDir, command: COMMAND });
  const ledger = openSqliteLedger({
    stateDir: config.stateDir,
    fileName: `${COMMAND}.sqlite`,
    readOnly: context.dryRun,
  });
  const local = createLocalStorage();
  const remotes: Storage[] = [];
  const storageFor = (end: MirrorEndpoint, jobName: string, side: string): Storage => {
    if (end.kind === 'local') return local;
    const storage = createSftpStorage({ connection: end.sftp, log: log.child({ job: jobName, side }) });
    remotes.push(storage);
    return storage;
  };
  const jobs = config.jobs
    .filter((job) => job.enabled)
    .map((job) => ({
      job,
      source: storageFor(job.source, job.name, 'source'),
      replica: storageFor(job.replica, job.name, 'replica'),
    }));
  for (const job of config.jobs.filter((item) => !item.enabled)) {
    log.info({ job: job.name }, `job ${job.name} is disabled`);
  }
  const abortSignal = abortAfterGrace(context.stopSignal, config.shutdownGraceMs, context.forceSignal);
  const limit = pLimit(config.concurrencyLimit);
  logSchedule(config, log);

  try {
    return await runLoop({
      loop: config,
      ...(context.stopOnLoop !== undefined
        ? { stopOnLoop: context.stopOnLoop }
        : context.dryRun
          ? { stopOnLoop: 1 }
          : {}),
      stopSignal: context.stopSignal,
      log,
      runPass: async (passNumber) => {
        const startedAtMs = Date.now();
        log.debug({ passNumber }, `pass ${passNumber} starts`);
        const reports = await runMirrorPass({
          config,
          jobs,
          log,
          limit,
          dryRun: context.dryRun,
          stopSignal: context.stopSignal,
          abortSignal,
          onPlan: (line) => context.stdout.write(`${line}\n`),
        });
        if (context.interactive) {
          context.stdout.write(
            formatSummaryTable(passNumber, reports, { nameHeading: 'job', doneHeading: 'done' }),
          );
        }
        return finishPass({
          command: COMMAND,
          passNumber,
          startedAtMs,
          reports,
          interrupted: context.stopSignal.aborted,
          log,
          ...(context.dryRun ? {} : { ledger }),
        });
      },
    });
  } finally {
    await closeAll(log, [
      ...remotes.map((storage) => () => storage.close()),
      () => ledger.close(),
      async () => lock?.release(),
    ]);
  }
}

function logSchedule(config: MirrorConfig, log: Logger): void {
  if (config.schedule !== undefined) {
    log.debug(
      { schedule: config.schedule, timeZone: config.timeZone ?? 'local' },
      'passes start on the schedule',
    );
  } else {
    log.debug({ intervalMs: config.intervalMs }, 'passes start after the interval');
  }
}
