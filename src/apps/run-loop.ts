import { Cron } from 'croner';
import type { LoopConfig } from '../config/index.js';
import { SyncError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

export type PassOutcome = 'ok' | 'failed' | 'interrupted';

export interface RunLoopOptions {
  loop: LoopConfig;
  /** Stop after this many passes; undefined runs until `stopSignal`. */
  stopOnLoop?: number;
  /** Aborted on SIGINT/SIGTERM: no new pass starts, the wait ends at once. */
  stopSignal: AbortSignal;
  log: Logger;
  runPass(passNumber: number): Promise<PassOutcome>;
  /**
   * Resolves when the next pass is due: after `delayMs`, or earlier when the caller
   * sees new work (the copier's watch mode). Rejects or resolves early when `signal` aborts.
   */
  waitForNextPass?: (delayMs: number, signal: AbortSignal) => Promise<void>;
  now?: () => Date;
}

/**
 * Runs passes one after another — never two at once, so a pass still running when
 * the next is due simply delays it — on an interval (measured from the end of one
 * pass to the start of the next) or a cron schedule. The result is the outcome of the
 * last pass, or `interrupted` when a signal ended the loop.
 */
export async function runLoop(options: RunLoopOptions): Promise<PassOutcome> {
  const now = options.now ?? (() => new Date());
  const wait = options.waitForNextPass ?? sleepUnlessAborted;
  const cron = options.loop.schedule
    ? new Cron(options.loop.schedule, {
        paused: true,
        ...(options.loop.timeZone ? { timezone: options.loop.timeZone } : {}),
      })
    : undefined;
  let outcome: PassOutcome = 'ok';
  for (let passNumber = 1; ; passNumber += 1) {
    if (cron && passNumber === 1) await waitForCron(cron, now, wait, options);
    if (options.stopSignal.aborted) return 'interrupted';
    outcome = await options.runPass(passNumber);
    if (outcome === 'interrupted' || options.stopSignal.aborted) return 'interrupted';
    if (options.stopOnLoop !== undefined && passNumber >= options.stopOnLoop) return outcome;
    if (cron) await waitForCron(cron, now, wait, options);
    else {
      options.log.debug({ passNumber, nextInMs: options.loop.intervalMs }, 'waiting for the next pass');
      await wait(options.loop.intervalMs, options.stopSignal);
    }
  }
}

async function waitForCron(
  cron: Cron,
  now: () => Date,
  wait: (delayMs: number, signal: AbortSignal) => Promise<void>,
  options: RunLoopOptions,
): Promise<void> {
  const from = now();
  const next = cron.nextRun(from);
  if (!next) {
    throw new SyncError('E_CONFIG', `the schedule "${options.loop.schedule ?? ''}" has no future run`, {
      hint: 'check schedule and time_zone in the config',
    });
  }
  const delayMs = Math.max(0, next.getTime() - from.getTime());
  options.log.debug({ nextRunAt: next.toISOString(), nextInMs: delayMs }, 'waiting for the scheduled pass');
  await wait(delayMs, options.stopSignal);
}

/** Resolves after `delayMs`, or at once when `signal` aborts (never rejects). */
export function sleepUnlessAborted(delayMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, delayMs);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
