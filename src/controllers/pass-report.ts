import type { Logger } from '../log/index.js';

/**
 * What one pass did for one source or destination: the numbers of the per-pass
 * summary line, and the skips worth telling the operator about, grouped so a pass
 * logs them once rather than once per file.
 */
export interface PassReport {
  /** Source, destination or job name. */
  name: string;
  listed: number;
  selected: number;
  /** Files moved end to end in this pass (fetched, delivered, mirrored). */
  done: number;
  /** Files already handled by an earlier pass (found in the ledger). */
  alreadyDone: number;
  /** Files passed over on purpose (filters, age, size, links, changed during transfer); not failures. */
  skipped: number;
  failed: number;
  /** Files left for a later pass (e.g. not enough free space, waiting for a sidecar). */
  waiting: number;
  bytes: number;
  durationMs: number;
  /** A failure of the whole source or destination (unreachable, denied), one line. */
  error?: string;
  /** First failure line of a file, for `status`. */
  firstFileError?: string;
  /** Skips the operator should hear of: reason → count and a few example paths. */
  notableSkips: Record<string, { count: number; examples: string[] }>;
}

const MAX_EXAMPLES = 5;

export function emptyReport(name: string): PassReport {
  return {
    name,
    listed: 0,
    selected: 0,
    done: 0,
    alreadyDone: 0,
    skipped: 0,
    failed: 0,
    waiting: 0,
    bytes: 0,
    durationMs: 0,
    notableSkips: {},
  };
}

export function noteSkip(report: PassReport, reason: string, path: string): void {
  const entry = (report.notableSkips[reason] ??= { count: 0, examples: [] });
  entry.count += 1;
  if (entry.examples.length < MAX_EXAMPLES) entry.examples.push(path);
}

export function noteFileError(report: PassReport, line: string): void {
  report.failed += 1;
  report.firstFileError ??= line;
}

/** Mean rate in MB/s (10^6 bytes) over the pass, for the summary line. */
export function megabytesPerSecond(report: PassReport): number {
  return report.durationMs > 0 ? Number((report.bytes / 1e6 / (report.durationMs / 1000)).toFixed(2)) : 0;
}

export function reportFailed(report: PassReport): boolean {
  return report.error !== undefined || report.failed > 0;
}

/** One warning per reason per pass, with a count and a few examples, instead of one per file. */
export function logNotableSkips(log: Logger, report: PassReport): void {
  for (const [reason, { count, examples }] of Object.entries(report.notableSkips)) {
    log.warn(
      { name: report.name, reason, count, examples },
      `${report.name}: ${count} file${count === 1 ? '' : 's'} — ${reason} (e.g. ${examples.map((example) => JSON.stringify(example)).join(', ')})`,
    );
  }
}
