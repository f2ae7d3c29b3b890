/**
 * What a section reports: one table per data set, one row per tool, with medians,
 * rates, peak RSS, the ratio of each peer's time to ours and the sha256 check; and
 * the targets the issue set, each with the figure that met or missed it.
 */

export interface ToolRow {
  tool: string;
  /** The command as a user would type it (paths shortened). */
  command: string;
  /** Wall seconds of every timed run, in order. */
  runsSeconds: number[];
  medianSeconds: number;
  mbPerSecond: number;
  filesPerSecond: number;
  /** Largest peak RSS over the timed runs, MiB; null when not measured. */
  peakRssMiB: number | null;
  /** This tool's median time ÷ ours (above 1: ours is faster); 1 for ours. */
  timeOverOurs: number | null;
  /** Every run of this tool produced exactly the data set's files (sha256). */
  sha256Ok: boolean;
  sha256Detail: string;
}

export interface SkippedTool {
  tool: string;
  reason: string;
}

export interface TargetCheck {
  /** e.g. "ours ≥ 2× the files/s of rclone --transfers 16". */
  target: string;
  /** The measured figure, e.g. 2.4 (ours ÷ peer, in files/s or MB/s). */
  measured: number | null;
  needed: number;
  /** The figure must stay at or below `needed` (a ratio of times, MiB); otherwise reach it. */
  atMost?: boolean;
  /** Unit printed after the figures; `×` when absent. */
  unit?: string;
  met: boolean;
}

export interface TableResult {
  section: string;
  dataSet: string;
  title: string;
  files: number;
  bytes: number;
  runs: number;
  rows: ToolRow[];
  skipped: SkippedTool[];
  targets: TargetCheck[];
  notes: string[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export interface RowInput {
  tool: string;
  command: string;
  runsSeconds: number[];
  peakRssBytes: (number | null)[];
  checks: { ok: boolean; detail: string }[];
}

/** Rows with rates and ratios; `oursTool` names the row the ratios divide by. */
export function buildRows(
  inputs: readonly RowInput[],
  dataSet: { files: number; bytes: number },
  oursTool: string,
): ToolRow[] {
  const ours = inputs.find((input) => input.tool === oursTool);
  const oursMedian = ours ? median(ours.runsSeconds) : Number.NaN;
  return inputs.map((input) => {
    const medianSeconds = median(input.runsSeconds);
    const rss = input.peakRssBytes.filter((value): value is number => value !== null);
    const failed = input.checks.find((check) => !check.ok);
    return {
      tool: input.tool,
      command: input.command,
      runsSeconds: input.runsSeconds.map(round3),
      medianSeconds: round3(medianSeconds),
      mbPerSecond: round1(dataSet.bytes / 1e6 / medianSeconds),
      filesPerSecond: Math.round(dataSet.files / medianSeconds),
      peakRssMiB: rss.length === 0 ? null : round1(Math.max(...rss) / (1024 * 1024)),
      timeOverOurs: Number.isFinite(oursMedian) ? round2(medianSeconds / oursMedian) : null,
      sha256Ok: input.checks.length > 0 && failed === undefined,
      sha256Detail: failed?.detail ?? input.checks[0]?.detail ?? 'not checked',
    };
  });
}

/** ours ÷ peer speed (= peer time ÷ our time) as a target line. */
export function speedTarget(
  rows: readonly ToolRow[],
  peerTool: string,
  needed: number,
  target: string,
): TargetCheck {
  const peer = rows.find((row) => row.tool === peerTool);
  const measured = peer?.timeOverOurs ?? null;
  return { target, measured, needed, met: measured !== null && measured >= needed };
}

/** Markdown table, with the targets and notes under it. */
export function formatTable(table: TableResult): string {
  const lines = [
    `### ${table.section}: ${table.title}`,
    '',
    `median of ${table.runs} runs; ${table.files.toLocaleString('en-US')} files, ${(table.bytes / 1e6).toFixed(1)} MB`,
    '',
    '| tool | median s | MB/s | files/s | peak RSS MiB | time ÷ ours | sha256 | runs s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const row of table.rows) {
    lines.push(
      `| ${row.tool} | ${row.medianSeconds.toFixed(2)} | ${row.mbPerSecond.toFixed(1)} | ${row.filesPerSecond} | ${
        row.peakRssMiB === null ? 'n/a' : row.peakRssMiB.toFixed(0)
      } | ${row.timeOverOurs === null ? 'n/a' : row.timeOverOurs.toFixed(2)} | ${
        row.sha256Ok ? 'ok' : `FAILED (${row.sha256Detail})`
      } | ${row.runsSeconds.map((value) => value.toFixed(2)).join(' ')} |`,
    );
  }
  for (const skipped of table.skipped) lines.push(`| ${skipped.tool} | skipped: ${skipped.reason} ||||||||`);
  lines.push('');
  for (const target of table.targets) {
    const unit = target.unit ?? '×';
    const got = target.measured === null ? 'not measured' : `${target.measured.toFixed(2)}${unit}`;
    const needs = `${target.atMost ? '≤' : '≥'} ${target.needed}${unit}`;
    lines.push(`- target ${target.target}: ${got} (needs ${needs}) ${target.met ? 'MET' : 'MISSED'}`);
  }
  for (const note of table.notes) lines.push(`- ${note}`);
  return `${lines.join('\n')}\n`;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
