import pLimit, { type LimitFunction } from 'p-limit';
import type { CommonConfig } from '../config/index.js';
import type { PassReport } from '../controllers/pass-report.js';
import type { TransferProgress } from '../controllers/transfer-progress.js';
import { acquireStateLock, type CommandName, type Ledger, openSqliteLedger } from '../ledger/index.js';
import { abortAfterGrace } from './abort-after-grace.js';
import type { AppContext } from './app-context.js';
import { closeAll } from './close-all.js';
import { finishPass } from './pass-outcome.js';
import { createProgressLine } from './progress-line.js';
import { type PassOutcome, runLoop } from './run-loop.js';
import { formatSummaryTable } from './summary-table.js';

/** What one pass of a command gets from the loop around it. */
export interface PassResources {
  passNumber: number;
  ledger: Ledger;
  /** One cap on work in flight for the whole process (`concurrency_limit`), shared by every pass. */
  limit: LimitFunction;
  /** Aborted `shutdown_grace` after a stop, or at once on a second signal: abort transfers in flight. */
  abortSignal: AbortSignal;
  /** A live progress line, on a terminal only and never in --dry-run. */
  progress?: TransferProgress;
  /** Prints one line of a --dry-run plan. */
  onPlan: (line: string) => void;
}

export interface RunPassesInput<C extends CommonConfig> {
  command: CommandName;
  context: AppContext<C>;
  /** The command's words in the summary: `source`/`fetched`, `destination`/`copied`, `job`/`mirrored`. */
  summary: { nameHeading: string; doneHeading: string };
  runPass(resources: PassResources): Promise<PassReport[]>;
  /** Resolves when the next pass is due (e.g. watch mode); the interval or schedule otherwise. */
  waitForNextPass?: (delayMs: number, signal: AbortSignal) => Promise<void>;
  /** Releases what the command opened (its storages), after the last pass. */
  close?: () => Promise<void>;
}

/**
 * The life every command shares: the lock on `state_dir` (not in --dry-run), the
 * ledger (read-only in --dry-run), passes on the loop until `--stop-on-loop` or a
 * signal (--dry-run alone means one pass), a progress line and summary table on a
 * terminal, one summary line per name and one ledger row per name after each pass,
 * and everything closed at the end, whatever happened.
 */
export async function runPasses<C extends CommonConfig>(input: RunPassesInput<C>): Promise<PassOutcome> {
  const { context, command } = input;
  const { config, log } = context;
  const lock = context.dryRun ? undefined : await acquireStateLock({ stateDir: config.stateDir, command });
  let ledger: Ledger;
  try {
    ledger = openSqliteLedger({
      stateDir: config.stateDir,
      fileName: `${command}.sqlite`,
      readOnly: context.dryRun,
    });
  } catch (err) {
    // The lock must not outlive a start that failed (it would only be found stale later).
    await lock?.release();
    await input.close?.();
    throw err;
  }
  const abortSignal = abortAfterGrace(context.stopSignal, config.shutdownGraceMs, context.forceSignal);
  const limit = pLimit(config.concurrencyLimit);
  const stopOnLoop = context.stopOnLoop ?? (context.dryRun ? 1 : undefined);

  try {
    return await runLoop({
      // A dry run is a preview: it plans at once rather than wait (minutes) for the schedule's next slot.
      loop: context.dryRun
        ? { intervalMs: config.intervalMs, shutdownGraceMs: config.shutdownGraceMs }
        : config,
      ...(stopOnLoop !== undefined ? { stopOnLoop } : {}),
      stopSignal: context.stopSignal,
      log,
      ...(input.waitForNextPass ? { waitForNextPass: input.waitForNextPass } : {}),
      runPass: async (passNumber) => {
        const startedAtMs = Date.now();
        log.debug({ passNumber }, `pass ${passNumber} starts`);
        const progress =
          context.interactive && !context.dryRun ? createProgressLine(process.stderr) : undefined;
        const reports = await input.runPass({
          passNumber,
          ledger,
          limit,
          abortSignal,
          ...(progress ? { progress } : {}),
          onPlan: (line) => context.stdout.write(`${line}\n`),
        });
        progress?.close();
        if (context.interactive) context.stdout.write(formatSummaryTable(passNumber, reports, input.summary));
        return finishPass({
          command,
          summaryKeys: { name: input.summary.nameHeading, done: input.summary.doneHeading },
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
      ...(input.close ? [input.close] : []),
      () => ledger.close(),
      async () => lock?.release(),
    ]);
  }
}
