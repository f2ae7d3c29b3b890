import pLimit from 'p-limit';
import type { FetcherConfig } from '../config/index.js';
import { runFetchPass } from '../controllers/fetch-pass.js';
import { acquireStateLock, openSqliteLedger } from '../ledger/index.js';
import { createLocalStorage, createSftpStorage } from '../storage/index.js';
import { abortAfterGrace } from './abort-after-grace.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import { finishPass } from './pass-outcome.js';
import { createProgressLine } from './progress-line.js';
import { type PassOutcome, runLoop } from './run-loop.js';
import { formatSummaryTable } from './summary-table.js';

const COMMAND = 'fetch-files';

/**
 * The fetcher: one lock on `state_dir`, one ledger, one SFTP pool per source kept
 * across passes, passes on the configured interval or schedule until told to stop.
 */
export async function runFetchApp(context: AppContext<FetcherConfig>): Promise<PassOutcome> {
  const { config, log } = context;
  const lock = context.dryRun
    ? undefined
    : await acquireStateLock({ stateDir: config.stateDir, command: COMMAND });
  let ledger: ReturnType<typeof openSqliteLedger>;
  try {
    ledger = openSqliteLedger({
      stateDir: config.stateDir,
      fileName: `${COMMAND}.sqlite`,
      readOnly: context.dryRun,
    });
  } catch (err) {
    // The lock must not outlive a start that failed (it would only be found stale later).
    await lock?.release();
    throw err;
  }
  const local = createLocalStorage();
  const sources = config.sources
    .filter((source) => source.enabled)
    .map((source) => ({
      source,
      remote: createSftpStorage({ connection: source, log: log.child({ source: source.name }) }),
    }));
  for (const source of config.sources.filter((item) => !item.enabled))
    log.info({ source: source.name }, `source ${source.name} is disabled`);
  const abortSignal = abortAfterGrace(context.stopSignal, config.shutdownGraceMs, context.forceSignal);
  const limit = pLimit(config.concurrencyLimit);

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
        const progress =
          context.interactive && !context.dryRun ? createProgressLine(process.stderr) : undefined;
        const reports = await runFetchPass({
          config,
          sources,
          local,
          ledger,
          log,
          limit,
          dryRun: context.dryRun,
          stopSignal: context.stopSignal,
          abortSignal,
          onPlan: (line) => context.stdout.write(`${line}\n`),
          ...(progress ? { progress } : {}),
        });
        progress?.close();
        if (context.interactive) {
          context.stdout.write(
            formatSummaryTable(passNumber, reports, { nameHeading: 'source', doneHeading: 'fetched' }),
          );
        }
        return finishPass({
          command: COMMAND,
          summaryKeys: { name: 'source', done: 'fetched' },
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
      ...sources.map(
        ({ remote }) =>
          () =>
            remote.close(),
      ),
      () => ledger.close(),
      async () => lock?.release(),
    ]);
  }
}
