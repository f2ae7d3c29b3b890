/**
 * Runs one command as a child process and measures it: wall time from spawn to exit,
 * and peak resident memory. Peak RSS comes from GNU time (`/usr/bin/time -f %M`),
 * which reports the largest resident set of the child and of every descendant it
 * waited for (the biggest process of the tree, not their sum); without GNU time it
 * is not measured.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export const GNU_TIME_PATH = '/usr/bin/time';

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** The run is killed (and rejected) after this long. */
  timeoutMs: number;
  /** A scratch file for GNU time's report (and `.stderr` beside it for the tool's stderr); removed afterwards. */
  reportPath: string;
}

export interface MeasuredRun {
  wallSeconds: number;
  /** Largest resident set of the tool's processes, or null when GNU time is missing. */
  peakRssBytes: number | null;
  exitCode: number | null;
  /** The last 64 KiB of stderr when the tool failed (else empty), for a failure message. */
  stderrTail: string;
}

/** Spawns `command args`, waits for it, and returns its wall time and peak RSS; rejects at the deadline. */
export function runMeasured(
  command: string,
  args: readonly string[],
  options: MeasureOptions,
): Promise<MeasuredRun> {
  const withTime = existsSync(GNU_TIME_PATH);
  const [file, argv] = withTime
    ? [GNU_TIME_PATH, ['-f', '%M', '-o', options.reportPath, '--', command, ...args]]
    : [command, [...args]];
  // stderr goes to a file: read through a pipe, a chatty tool (ours logs a line per file)
  // would make the bench itself work, on the same cores, while the tool is timed.
  const stderrPath = `${options.reportPath}.stderr`;
  const stderrFd = openSync(stderrPath, 'w');
  const startedMs = performance.now();
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'ignore', stderrFd],
  });
  closeSync(stderrFd);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not finish within ${options.timeoutMs} ms:\n${tailOf(stderrPath)}`));
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      rmSync(stderrPath, { force: true });
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const wallSeconds = (performance.now() - startedMs) / 1000;
      const stderrTail = code === 0 ? '' : tailOf(stderrPath);
      rmSync(stderrPath, { force: true });
      resolve({
        wallSeconds,
        peakRssBytes: withTime ? readPeakRss(options.reportPath) : null,
        exitCode: code,
        stderrTail,
      });
    });
  });
}

/** The last 64 KiB of a file, as text. */
function tailOf(path: string): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const sizeBytes = fstatSync(fd).size;
      const length = Math.min(sizeBytes, 65_536);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, sizeBytes - length);
      return buffer.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** GNU time writes "Command exited with non-zero status N" before the figure when the tool failed. */
function readPeakRss(reportPath: string): number | null {
  try {
    const lines = readFileSync(reportPath, 'utf8').trim().split('\n');
    const kib = Number(lines.at(-1));
    return Number.isFinite(kib) ? kib * 1024 : null;
  } catch {
    return null;
  } finally {
    rmSync(reportPath, { force: true });
  }
}

/** A scratch path for `reportPath` inside `dir`. */
export function reportPathIn(dir: string, name: string): string {
  return join(dir, `${name}.time`);
}
