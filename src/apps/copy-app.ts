import type { CopierConfig } from '../config/index.js';
import { runCopyPass } from '../controllers/copy-pass.js';
import { isTemporaryInIncoming } from '../controllers/list-incoming.js';
import { createLocalStorage, createSftpStorage } from '../storage/index.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import type { PassOutcome } from './run-loop.js';
import { runPasses } from './run-passes.js';
import { type FolderWatch, watchFolder } from './watch-folder.js';

/**
 * The copier: one storage per destination kept across passes, around the shared pass
 * loop; with `watch: true` a pass starts as soon as something lands in incoming.
 */
export async function runCopyApp(context: AppContext<CopierConfig>): Promise<PassOutcome> {
  const { config, log } = context;
  const local = createLocalStorage();
  const destinations = config.destinations.map((destination) => ({
    destination,
    storage:
      destination.kind === 'local'
        ? local
        : createSftpStorage({
            connection: destination.sftp,
            log: log.child({ destination: destination.name }),
            traceProtocol: context.traceProtocol,
          }),
  }));
  for (const destination of config.destinations.filter((item) => !item.enabled)) {
    log.info(
      { destination: destination.name },
      `destination ${destination.name} is disabled: files no enabled destination takes wait in incoming`,
    );
  }
  // Kept across passes: unmatched files are reported once per process; destinations are swept of temporaries once.
  const reportedUnmatched = new Set<string>();
  const destinationsToClean = new Set(config.destinations.map((destination) => destination.name));

  let watch: FolderWatch | undefined;
  if (config.watch && !context.dryRun) {
    // The folder must exist for the watch to start; otherwise only the interval would ever run a pass.
    await local.mkdirp(config.incoming, config.dirMode === undefined ? {} : { mode: config.dirMode });
    watch = watchFolder(config.incoming, log, { ignoreName: isTemporaryInIncoming });
  }
  const activeWatch = watch;
  return runPasses({
    command: 'copy-files',
    context,
    summary: { nameHeading: 'destination', doneHeading: 'copied' },
    ...(activeWatch
      ? { waitForNextPass: (delayMs, signal) => activeWatch.waitForNextPass(delayMs, signal) }
      : {}),
    runPass: (pass) =>
      runCopyPass({
        config,
        destinations,
        local,
        ledger: pass.ledger,
        log,
        limit: pass.limit,
        dryRun: context.dryRun,
        stopSignal: context.stopSignal,
        abortSignal: pass.abortSignal,
        onPlan: pass.onPlan,
        ...(pass.progress ? { progress: pass.progress } : {}),
        reportedUnmatched,
        destinationsToClean,
      }),
    close: async () => {
      activeWatch?.close();
      await closeAll(
        log,
        destinations
          .filter(({ storage }) => storage !== local)
          .map(
            ({ storage }) =>
              () =>
                storage.close(),
          ),
      );
    },
  });
}
