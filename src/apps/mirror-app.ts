import type { MirrorConfig, MirrorEndpoint } from '../config/index.js';
import { runMirrorPass } from '../controllers/mirror-pass.js';
import type { Logger } from '../log/index.js';
import { createLocalStorage, createSftpStorage, type Storage } from '../storage/index.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import type { PassOutcome } from './run-loop.js';
import { runPasses } from './run-passes.js';

/**
 * The mirror: one storage per SFTP end kept across passes, around the shared pass
 * loop (the lock keeps two mirror processes off one `state_dir`; passes are recorded
 * for `status`).
 */
export async function runMirrorApp(context: AppContext<MirrorConfig>): Promise<PassOutcome> {
  const { config, log } = context;
  const local = createLocalStorage();
  const remotes: Storage[] = [];
  const storageFor = (end: MirrorEndpoint, jobName: string, side: string): Storage => {
    if (end.kind === 'local') return local;
    const storage = createSftpStorage({
      connection: end.sftp,
      log: log.child({ job: jobName, side }),
      traceProtocol: context.traceProtocol,
    });
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
  logSchedule(config, log);
  return runPasses({
    command: 'mirror-files',
    context,
    summary: { nameHeading: 'job', doneHeading: 'mirrored' },
    runPass: (pass) =>
      runMirrorPass({
        config,
        jobs,
        log,
        limit: pass.limit,
        dryRun: context.dryRun,
        stopSignal: context.stopSignal,
        abortSignal: pass.abortSignal,
        onPlan: pass.onPlan,
      }),
    close: () =>
      closeAll(
        log,
        remotes.map((storage) => () => storage.close()),
      ),
  });
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
