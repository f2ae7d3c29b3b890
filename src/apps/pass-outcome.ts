import type { CommandName, Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import { megabytesPerSecond, type PassReport, reportFailed } from '../controllers/pass-report.js';
import type { PassOutcome } from './run-loop.js';

export interface FinishPassInput {
  command: CommandName;
  passNumber: number;
  startedAtMs: number;
  reports: readonly PassReport[];
  interrupted: boolean;
  log: Logger;
  /** Undefined in --dry-run: nothing is recorded. */
  ledger?: Ledger;
  /**
   * The command's own words for the summary line, added beside the generic `name` and
   * `done`: e.g. `source`/`fetched` for the fetcher, `destination`/`copied` for the copier.
   */
  summaryKeys?: { name: string; done: string };
}

/**
 * Ends a pass: one structured summary line per source or destination, one row per
 * name in the ledger for `status`, and the outcome that sets the exit code.
 */
export async function finishPass(input: FinishPassInput): Promise<PassOutcome> {
  const endedAtMs = Date.now();
  const failed = input.reports.some(reportFailed);
  for (const report of input.reports) {
    const result = input.interrupted ? 'interrupted' : reportFailed(report) ? 'failed' : 'ok';
    const level = result === 'failed' ? 'warn' : 'info';
    input.log[level](
      {
        event: 'pass-summary',
        passNumber: input.passNumber,
        name: report.name,
        ...(input.summaryKeys
          ? { [input.summaryKeys.name]: report.name, [input.summaryKeys.done]: report.done }
          : {}),
        result,
        listed: report.listed,
        selected: report.selected,
        done: report.done,
        alreadyDone: report.alreadyDone,
        skipped: report.skipped,
        failed: report.failed,
        waiting: report.waiting,
        bytes: report.bytes,
        mbPerSec: megabytesPerSecond(report),
        durationMs: report.durationMs,
        ...(report.error ? { error: report.error } : {}),
      },
      `pass ${input.passNumber} ${report.name}: ${report.done} done, ${report.skipped} skipped, ${report.failed} failed, ${report.waiting} waiting${report.error ? ` — ${report.error}` : ''}`,
    );
    await input.ledger?.recordPass({
      command: input.command,
      name: report.name,
      passNumber: input.passNumber,
      startedAtMs: input.startedAtMs,
      endedAtMs,
      result,
      filesDone: report.done,
      bytesDone: report.bytes,
      filesFailed: report.failed,
      filesWaiting: report.waiting,
      ...((report.error ?? report.firstFileError)
        ? { lastError: report.error ?? report.firstFileError }
        : {}),
    });
  }
  if (input.interrupted) return 'interrupted';
  return failed ? 'failed' : 'ok';
}
