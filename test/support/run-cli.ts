/**
 * Runs the compiled CLI (dist/, built by the global setup) as a child process, as a
 * user would, and collects what it printed. Every run has a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const PROJECT_ROOT = join(import.meta.dirname, '..', '..');

export type CliCommand = 'fetch-files' | 'copy-files' | 'mirror-files';

export interface CliRunOptions {
  cwd?: string;
  /** Added to a copy of this process's environment (minus CI/TTY noise). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export function cliPath(command: CliCommand): string {
  return join(PROJECT_ROOT, 'dist', 'cli', `${command}.js`);
}

export function spawnCli(
  command: CliCommand,
  args: readonly string[],
  options: CliRunOptions = {},
): ChildProcess {
  return spawn(process.execPath, [cliPath(command), ...args], {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function runCli(
  command: CliCommand,
  args: readonly string[],
  options: CliRunOptions = {},
): Promise<CliResult> {
  const startedMs = Date.now();
  const child = spawnCli(command, args, options);
  return collect(child, options.timeoutMs ?? 60_000, startedMs, `${command} ${args.join(' ')}`);
}

/** Waits for a spawned child and gathers its output; kills it and rejects at the deadline. */
export function collect(
  child: ChildProcess,
  timeoutMs: number,
  startedMs = Date.now(),
  label = 'child',
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${label} did not finish within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`),
      );
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, durationMs: Date.now() - startedMs });
    });
  });
}

/** Every JSON line a command wrote (its console output when not on a terminal). */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
