/**
 * End-to-end fetcher scenarios: a config YAML for the sshd fixture, remote trees with
 * chosen mtimes, hashes of local trees, the temporaries left behind, and the CLI run
 * with its JSON log lines parsed.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { dump } from 'js-yaml';
import { type CliResult, type CliRunOptions, jsonLines, runCli } from './run-cli.js';
import type { SshdFixture } from './sshd-fixture.js';

/** One hour ago: old enough for any `min_age` a test sets, unless it says otherwise. */
export const AN_HOUR_AGO_MS = Date.now() - 3_600_000;

export interface ScenarioSource {
  name: string;
  remoteDir: string;
  /** Extra source keys, in YAML spelling (`after_fetch`, `include`, …); they win over the defaults. */
  keys?: Record<string, unknown>;
}

export interface FetcherScenario {
  dir: string;
  configPath: string;
  incoming: string;
  archive: string | undefined;
  stateDir: string;
  logDir: string;
}

export interface WriteFetcherConfigOptions {
  sshd: SshdFixture;
  /** A fresh local folder for incoming, archive, state and logs. */
  dir: string;
  sources: readonly ScenarioSource[];
  /** Default true. */
  archive?: boolean;
  /** Extra top-level keys in YAML spelling; they win over the defaults. */
  keys?: Record<string, unknown>;
}

/** The fixture's connection keys with short deadlines and no retries, so faults show fast. */
export function fixtureSourceKeys(sshd: SshdFixture): Record<string, unknown> {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    private_key: sshd.clientKeyPath,
    known_hosts: sshd.knownHostsPath,
    connections: 2,
    connect_timeout: '5s',
    operation_timeout: '5s',
    keepalive_interval: '2s',
    retries: 0,
  };
}

export async function writeFetcherConfig(options: WriteFetcherConfigOptions): Promise<FetcherScenario> {
  const { sshd, dir } = options;
  await mkdir(dir, { recursive: true });
  const scenario: FetcherScenario = {
    dir,
    configPath: join(dir, 'fetcher.yml'),
    incoming: join(dir, 'incoming'),
    archive: options.archive === false ? undefined : join(dir, 'archive'),
    stateDir: join(dir, 'state'),
    logDir: join(dir, 'log'),
  };
  const config = {
    concurrency_limit: 4,
    interval: '1s',
    incoming: scenario.incoming,
    ...(scenario.archive !== undefined ? { archive: scenario.archive } : {}),
    state_dir: scenario.stateDir,
    log_dir: scenario.logDir,
    ...options.keys,
    sources: options.sources.map((source) => ({
      name: source.name,
      ...fixtureSourceKeys(sshd),
      remote_dir: source.remoteDir,
      ...source.keys,
    })),
  };
  await writeFile(scenario.configPath, dump(config));
  return scenario;
}

/** Writes files below `root` (parents created), every one with `mtimeMs` (default an hour ago). */
export async function makeRemoteTree(
  root: string,
  files: Record<string, string | Buffer>,
  mtimeMs = AN_HOUR_AGO_MS,
): Promise<void> {
  for (const [relPath, content] of Object.entries(files)) {
    const path = join(root, relPath);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
  }
}

export function sha256Of(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Every regular file below `root`, by path relative to it → sha256; an absent root is empty. */
export async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const relPath of await listFiles(root)) {
    out.set(relPath, sha256Of(await readFile(join(root, relPath))));
  }
  return out;
}

/** Regular files (not links, not folders) below `root`, relative paths, sorted; an absent root is empty. */
export async function listFiles(root: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(root, { recursive: true, withFileTypes: true });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

/** Temporaries (`.name….part`) below each root: what "no temporary left" asserts empty. */
export async function listTemporaries(...roots: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const root of roots) {
    for (const relPath of await listFiles(root)) {
      const name = relPath.split('/').at(-1) ?? '';
      if (name.startsWith('.') && name.endsWith('.part')) found.push(join(root, relPath));
    }
  }
  return found;
}

export async function pathExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

export interface FetchRun extends CliResult {
  /** Every JSON log line the run wrote to stderr. */
  logs: Record<string, unknown>[];
  /** The `pass-summary` lines, in order. */
  summaries: PassSummary[];
}

export interface PassSummary {
  event: 'pass-summary';
  passNumber: number;
  name: string;
  result: 'ok' | 'failed' | 'interrupted';
  listed: number;
  selected: number;
  done: number;
  alreadyDone: number;
  skipped: number;
  failed: number;
  waiting: number;
  bytes: number;
  mbPerSec: number;
  durationMs: number;
  error?: string;
}

/** `fetch-files --config <scenario> --stop-on-loop 1 …args`, logs parsed. */
export async function runFetch(
  scenario: FetcherScenario,
  args: readonly string[] = [],
  options: CliRunOptions = {},
): Promise<FetchRun> {
  const loop = args.includes('--stop-on-loop') ? [] : ['--stop-on-loop', '1'];
  const result = await runCli('fetch-files', ['--config', scenario.configPath, ...loop, ...args], {
    timeoutMs: 60_000,
    ...options,
  });
  return withLogs(result);
}

export function withLogs(result: CliResult): FetchRun {
  const logs = jsonLines(result.stderr);
  return {
    ...result,
    logs,
    summaries: logs.filter((line) => line.event === 'pass-summary') as unknown as PassSummary[],
  };
}

/** The summary line of one source in a run's last pass. */
export function summaryOf(run: FetchRun, source: string): PassSummary {
  const found = run.summaries.filter((line) => line.name === source).at(-1);
  if (!found) throw new Error(`no pass-summary for ${source}:\n${run.stderr}`);
  return found;
}

/** The "fetched …" info lines: one per file committed into incoming. */
export function fetchedLines(run: FetchRun, source?: string): Record<string, unknown>[] {
  return run.logs.filter(
    (line) =>
      typeof line.msg === 'string' &&
      line.msg.startsWith('fetched ') &&
      (source === undefined || line.source === source),
  );
}

/** Remote paths fetched in a run, sorted. */
export function fetchedRemotePaths(run: FetchRun, source?: string): string[] {
  return fetchedLines(run, source)
    .map((line) => String(line.remotePath))
    .sort();
}

/** Log lines whose `err.code` is `code`. */
export function linesWithCode(run: FetchRun, code: string): Record<string, unknown>[] {
  return run.logs.filter((line) => (line.err as { code?: unknown } | undefined)?.code === code);
}

/** Polls `check` every 20 ms until it returns a value other than undefined/false; rejects after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadlineMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Settings that make a download crawl (one 1 KiB read in flight: a few MB/s on loopback), to act during it. */
export const SLOW_TRANSFER_KEYS = { read_concurrency: 1, chunk_size: '1KiB' } as const;
