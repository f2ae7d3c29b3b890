import type { FetcherConfig } from '../config/index.js';
import { runFetchPass } from '../controllers/fetch-pass.js';
import { createLocalStorage, createSftpStorage } from '../storage/index.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import type { PassOutcome } from './run-loop.js';
import { runPasses } from './run-passes.js';

/**
 * The fetcher: one SFTP pool per enabled source, kept across passes, around the
 * shared pass loop (lock, ledger, summary).
 */
export async function runFetchApp(context: AppContext<FetcherConfig>): Promise<PassOutcome> {
  const { config, log } = context;
  const local = createLocalStorage();
  const sources = config.sources
    .filter((source) => source.enabled)
    .map((source) => ({
      source,
      remote: createSftpStorage({
        connection: source,
        log: log.child({ source: source.name }),
        traceProtocol: context.traceProtocol,
      }),
    }));
  for (const source of config.sources.filter((item) => !item.enabled)) {
    log.info({ source: source.name }, `source ${source.name} is disabled`);
  }
  return runPasses({
    command: 'fetch-files',
    context,
    summary: { nameHeading: 'source', doneHeading: 'fetched' },
    runPass: (pass) =>
      runFetchPass({
        config,
        sources,
        local,
        ledger: pass.ledger,
        log,
        limit: pass.limit,
        dryRun: context.dryRun,
        stopSignal: context.stopSignal,
        abortSignal: pass.abortSignal,
        onPlan: pass.onPlan,
        ...(pass.progress ? { progress: pass.progress } : {}),
      }),
    close: () =>
      closeAll(
        log,
        sources.map(
          ({ remote }) =>
            () =>
              remote.close(),
        ),
      ),
  });
}
