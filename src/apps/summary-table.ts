import { formatDuration, formatSize } from '../config/index.js';
import { megabytesPerSecond, type PassReport } from '../controllers/pass-report.js';

export interface SummaryColumns {
  /** Heading of the name column: `source`, `destination`, `job`. */
  nameHeading: string;
  /** Heading of the "done" column: `fetched`, `delivered`, `mirrored`. */
  doneHeading: string;
}

/** The per-pass summary as a small text table, for a terminal. */
export function formatSummaryTable(
  passNumber: number,
  reports: readonly PassReport[],
  columns: SummaryColumns,
): string {
  const header = [
    columns.nameHeading,
    'listed',
    'selected',
    columns.doneHeading,
    'skipped',
    'failed',
    'waiting',
    'bytes',
    'MB/s',
    'time',
  ];
  const rows = reports.map((report) => [
    report.name,
    String(report.listed),
    String(report.selected),
    String(report.done),
    String(report.skipped),
    String(report.failed),
    String(report.waiting),
    formatSize(report.bytes),
    megabytesPerSecond(report).toFixed(1),
    formatDuration(report.durationMs),
  ]);
  const widths = header.map((heading, column) =>
    Math.max(heading.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join('  ');
  const errors = reports
    .filter((report) => report.error)
    .map((report) => `  ${report.name}: ${report.error ?? ''}`);
  return [`pass ${passNumber}`, line(header), ...rows.map(line), ...errors, ''].join('\n');
}
