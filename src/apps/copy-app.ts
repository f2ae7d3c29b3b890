import pLimit from 'p-limit';
import type { CopierConfig } from '../config/index.js';
import { runCopyPass } from '../controllers/copy-pass.js';
import { isTemporaryInIncoming } from '../controllers/list-incoming.js';
import { acquireStateLock, openSqliteLedger } from '../ledger/index.js';
import { createLocalStorage, createSftpStorage } from '../storage/index.js';
import { abortAfterGrace } from './abort-after-grace.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import { finishPass } from './pass-outcome.js';
import { createProgressLine } from './progress-line.js';
import { type PassOutcome, runLoop } from './run-loop.js';
import { formatSummaryTable } from './summary-table.js';
import { type FolderWatch, watchFolder } from './watch-folder.js';

const COMMAND = 'copy-files';

/**
 * The copier: one lock on `state_dir`, one ledger of deliveries, one storage per
 * destination kept across passes; passes on the interval, or on changes in incoming
 * with `watch: true`.
 */
export async function runCopyApp(context: AppContext<CopierConfig>): Promise<PassOutcome> {
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
  const destinations = config.destinations.map((destination) => ({
    destination,
    storage:
      destination.kind === 'local'
        ? local
        : createSftpStorage({
            connection: destination.sftp,
            log: log.child({ destination: destination.name }),
          }),
  }));
  for (const destination of config.destinations.filter((item) => !item.enabled)) {
    log.info(
      { destination: destination.name },
      `destination ${destination.name} is disabled: files no enabled destination takes wait in incoming`,
    );
  }
  const abortSignal = abortAfterGrace(context.stopSignal, config.shutdownGraceMs, context.forceSignal);
  const limit = pLimit(config.concurrencyLimit);
  const reportedUnmatched = new Set<string>();
  const destinationsToClean = new Set(config.destinations.map((destination) => destination.name));
  let watch: FolderWatch | undefined;

  try {
    if (config.watch && !context.dryRun) {
      // The folder must exist for the watch to start; otherwise only the interval would ever run a pass.
      await local.mkdirp(config.incoming, config.dirMode === undefined ? {} : { mode: config.dirMode });
      watch = watchFolder(config.incoming, log, { ignoreName: isTemporaryInIncoming });
    }
    const activeWatch = watch;
    return await runLoop({
      loop: config,
      ...(context.stopOnLoop !== undefined
        ? { stopOnLoop: context.stopOnLoop }
        : context.dryRun
          ? { stopOnLoop: 1 }
          : {}),
      stopSignal: context.stopSignal,
      log,
      ...(activeWatch
        ? {
            waitForNextPass: (delayMs: number, signal: AbortSignal) =>
              activeWatch.waitForNextPass(delayMs, signal),
          }
        : {}),
      runPass: async (passNumber) => {
        const startedAtMs = Date.now();
        const progress =
          context.interactive && !context.dryRun ? createProgressLine(process.stderr) : undefined;
        const reports = await runCopyPass({
          config,
          destinations,
          local,
          ledger,
          log,
          limit,
          dryRun: context.dryRun,
          stopSignal: context.stopSignal,
          abortSignal,
          onPlan: (line) => context.stdout.write(`${line}\n`),
          ...(progress ? { progress } : {}),
          reportedUnmatched,
          destinationsToClean,
        });
        progress?.close();
        if (context.interactive) {
          context.stdout.write(
            formatSummaryTable(passNumber, reports, { nameHeading: 'destination', doneHeading: 'copied' }),
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
    watch?.close();
    await closeAll(log, [
      ...destinations
        .filter(({ storage }) => storage !== local)
        .map(
          ({ storage }) =>
            () =>
              storage.close(),
        ),
      () => ledger.close(),
      async () => lock?.release(),
    ]);
  }
}
