/**
 * What every section of the bench shares: options, the work folder, the tools found,
 * a progress printer, and the runner that alternates tools over one data set.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { rm } from 'node:fs/promises';
import type { Manifest } from './data-sets.js';
import { type MeasuredRun, reportPathIn, runMeasured } from './measure-process.js';
import type { Prerequisites } from './prerequisites.js';
import type { RowInput } from './results-table.js';
import { checkTree, warmRead } from './tree-check.js';

export type SectionName = 'fetch' | 'copy' | 'scale' | 'mirror';
export const SECTION_NAMES: readonly SectionName[] = ['fetch', 'copy', 'scale', 'mirror'];

export interface BenchContext {
  projectRoot: string;
  /** Folder of the compiled CLI entries the bench runs (`fetch-files.js`, …). */
  cliDir: string;
  /** Fresh folder for everything this run writes (removed at the end unless --keep). */
  workDir: string;
  quick: boolean;
  /** Timed runs per tool and data set. */
  runs: number;
  /** One untimed run of each tool before the timed ones. */
  warmUp: boolean;
  prereqs: Prerequisites;
  /** Progress lines (stderr); tables go to stdout. */
  progress(line: string): void;
}

/** One way of running a tool on a data set; `prepare` makes fresh folders and returns the command. */
export interface BenchTool {
  name: string;
  /** The command as a reader of the table should understand it. */
  display: string;
  prepare(runLabel: string): Promise<PreparedRun>;
}

export interface PreparedRun {
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Folders that must hold exactly the data set once the run ended. */
  outputDirs: string[];
  /** Read before the timed run, so the source is in the page cache. */
  warmDir?: string;
}

export interface CompareOptions {
  /** Remove each run's output once checked (big data sets: disk space). Small files stay until the end. */
  deleteOutputs: boolean;
  timeoutMs: number;
}

/**
 * Runs every tool `ctx.runs` times on one data set, alternating them (each round in a
 * rotated order, so no tool always goes first), after one untimed warm-up run each.
 * Before each timed run: the source is re-read and the disk quiesced (`sync`), so
 * dirty pages left by the previous tool are not written back on this one's time.
 * Every run's output is checked file by file (sha256) against `manifest`.
 */
export async function compareTools(
  ctx: BenchContext,
  label: string,
  tools: readonly BenchTool[],
  manifest: Manifest,
  options: CompareOptions,
): Promise<RowInput[]> {
  const rows = new Map<string, RowInput>(
    tools.map((tool) => [
      tool.name,
      { tool: tool.name, command: tool.display, runsSeconds: [], peakRssBytes: [], checks: [] },
    ]),
  );
  const once = async (tool: BenchTool, runLabel: string, timed: boolean): Promise<void> => {
    const prepared = await tool.prepare(runLabel);
    if (prepared.warmDir !== undefined) await warmRead(prepared.warmDir);
    quiesceDisk();
    const measured = await runMeasured(prepared.command, prepared.args, {
      timeoutMs: options.timeoutMs,
      reportPath: reportPathIn(ctx.workDir, `${label}-${tool.name}-${runLabel}`.replace(/[^\w.-]+/g, '_')),
      ...(prepared.cwd !== undefined ? { cwd: prepared.cwd } : {}),
      ...(prepared.env !== undefined ? { env: prepared.env } : {}),
    });
    const checkStartedMs = performance.now();
    const check = await checkRun(measured, prepared, manifest);
    const checkSeconds = (performance.now() - checkStartedMs) / 1000;
    const row = rows.get(tool.name) as RowInput;
    if (timed || !check.ok) row.checks.push(check);
    if (timed) {
      row.runsSeconds.push(measured.wallSeconds);
      row.peakRssBytes.push(measured.peakRssBytes);
    }
    ctx.progress(
      `  ${label} ${tool.name} ${runLabel}: ${measured.wallSeconds.toFixed(2)} s${check.ok ? '' : ` FAILED: ${check.detail}`} (checked in ${checkSeconds.toFixed(1)} s)`,
    );
    if (options.deleteOutputs) {
      for (const dir of prepared.outputDirs) await rm(dir, { recursive: true, force: true });
    }
  };
  if (ctx.warmUp) for (const tool of tools) await once(tool, 'warm-up', false);
  for (let round = 0; round < ctx.runs; round += 1) {
    const shift = round % tools.length;
    for (const tool of [...tools.slice(shift), ...tools.slice(0, shift)])
      await once(tool, `run-${round + 1}`, true);
  }
  return tools.map((tool) => rows.get(tool.name) as RowInput);
}

async function checkRun(
  measured: MeasuredRun,
  prepared: PreparedRun,
  manifest: Manifest,
): Promise<{ ok: boolean; detail: string }> {
  if (measured.exitCode !== 0) {
    const lines = measured.stderrTail.trim().split('\n');
    // The first line naming an error says more than the stack trace under it.
    const errorLine = lines.find((line) => /error|E_[A-Z]+/i.test(line)) ?? '';
    return {
      ok: false,
      detail: `exit ${measured.exitCode}: ${[errorLine.slice(0, 2000), ...lines.slice(-2)].join(' | ')}`,
    };
  }
  for (const dir of prepared.outputDirs) {
    const check = await checkTree(dir, manifest);
    if (!check.ok) return { ok: false, detail: `${dir}: ${check.detail}` };
  }
  return { ok: true, detail: `same ${manifest.sha256ByPath.size} files` };
}

/** Writes every dirty page back now, untimed, so no tool pays for another's writes. */
export function quiesceDisk(): void {
  spawnSync('sync', { stdio: 'ignore' });
}
