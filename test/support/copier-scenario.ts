/**
 * Building blocks for end-to-end copier tests: a temp tree with incoming, state and
 * log folders, a config written from a plain object, files with chosen content and
 * mtime, runs of the real `copy-files` CLI, and views of folder trees (content hash,
 * inode, mtime) to compare before and after a pass.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { SshdFixture } from './sshd-fixture.js';
import { type CliResult, type CliRunOptions, jsonLines, runCli, spawnCli } from './run-cli.js';
import { makeTempDir, type TempDir } from './temp-dir.js';

/** A config as the YAML file would hold it (snake_case keys); written as JSON, which YAML reads. */
export type CopierYaml = Record<string, unknown> & { destinations: Record<string, unknown>[] };

export interface CopierRun extends CliResult {
  /** Every JSON log line the run wrote to stderr. */
  logs: Record<string, unknown>[];
}

export interface TreeFile {
  sha256: string;
  sizeBytes: number;
  mtimeMs: number;
  ino: number;
  nlink: number;
}

export class CopierScenario {
  readonly incoming: string;
  readonly stateDir: string;
  readonly logDir: string;
  readonly configPath: string;

  private constructor(readonly temp: TempDir) {
    this.incoming = join(temp.path, 'incoming');
    this.stateDir = join(temp.path, 'state');
    this.logDir = join(temp.path, 'log');
    this.configPath = join(temp.path, 'copier.yml');
  }

  static async create(prefix = 'copier-'): Promise<CopierScenario> {
    const scenario = new CopierScenario(await makeTempDir(prefix));
    await mkdir(scenario.incoming, { recursive: true });
    return scenario;
  }

  get root(): string {
    return this.temp.path;
  }

  /** A path below the scenario's root. */
  path(...parts: string[]): string {
    return join(this.temp.path, ...parts);
  }

  /** Writes the config; incoming, state_dir, log_dir and a 50ms interval are filled in unless given. */
  async writeConfig(config: CopierYaml): Promise<string> {
    const full = {
      incoming: this.incoming,
      state_dir: this.stateDir,
      log_dir: this.logDir,
      interval: '50ms',
      ...config,
    };
    await writeFile(this.configPath, `${JSON.stringify(full, null, 2)}\n`);
    return this.configPath;
  }

  /** A file in incoming with an mtime an hour ago (whole milliseconds) unless given. */
  async addFile(relPath: string, content: string | Buffer, mtimeMs = defaultMtimeMs()): Promise<string> {
    return writeFileWithMtime(join(this.incoming, relPath), content, mtimeMs);
  }

  run(args: readonly string[] = [], options: CliRunOptions = {}): Promise<CopierRun> {
    return runCli('copy-files', ['--config', this.configPath, ...args], options).then(withLogs);
  }

  spawn(args: readonly string[] = [], options: CliRunOptions = {}): ChildProcess {
    return spawnCli('copy-files', ['--config', this.configPath, ...args], options);
  }

  remove(): Promise<void> {
    return this.temp.remove();
  }
}

/** A run's exit and output, for an assertion's message. */
export function outputOf(result: CliResult): string {
  return `exit ${result.code ?? result.signal}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

export function withLogs(result: CliResult): CopierRun {
  return { ...result, logs: jsonLines(result.stderr) };
}

let mtimeCounter = 0;

/** Distinct, whole-second mtimes an hour in the past (SFTP keeps seconds only). */
export function defaultMtimeMs(): number {
  mtimeCounter += 1;
  return (Math.floor(Date.now() / 1000) - 3600 - mtimeCounter) * 1000;
}

export async function writeFileWithMtime(
  localPath: string,
  content: string | Buffer,
  mtimeMs: number,
): Promise<string> {
  await mkdir(dirname(localPath), { recursive: true });
  await writeFile(localPath, content);
  await utimes(localPath, mtimeMs / 1000, mtimeMs / 1000);
  return localPath;
}

export function sha256Of(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Deterministic pseudo-random bytes (xorshift), so a failing run can be repeated. */
export function seededBytes(seed: number, sizeBytes: number): Buffer {
  const out = Buffer.allocUnsafe(sizeBytes);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < sizeBytes; i += 1) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/** A small seeded random number generator (mulberry32) for test schedules. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every regular file below `dirPath` by relative path, with hash, size, mtime and inode; {} when missing. */
export async function readTree(dirPath: string): Promise<Record<string, TreeFile>> {
  const out: Record<string, TreeFile> = {};
  let names: string[];
  try {
    names = await readdir(dirPath, { recursive: true });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return out;
    throw err;
  }
  for (const name of names.sort()) {
    const path = join(dirPath, name);
    let stats: Awaited<ReturnType<typeof lstat>>;
    let content: Buffer;
    try {
      stats = await lstat(path);
      if (!stats.isFile()) continue;
      content = await readFile(path);
    } catch (err) {
      // Gone since the listing (a copier or fetcher at work): not part of the view.
      if ((err as { code?: unknown }).code === 'ENOENT') continue;
      throw err;
    }
    out[relative(dirPath, path)] = {
      sha256: sha256Of(content),
      sizeBytes: stats.size,
      mtimeMs: stats.mtimeMs,
      ino: stats.ino,
      nlink: stats.nlink,
    };
  }
  return out;
}

/** relPath → sha256 of a tree, for equality checks. */
export async function hashTree(dirPath: string): Promise<Record<string, string>> {
  const tree = await readTree(dirPath);
  return Object.fromEntries(Object.entries(tree).map(([relPath, file]) => [relPath, file.sha256]));
}

/** Temporaries (`.name….part`) anywhere below the given folders. */
export async function findTemporaries(...dirPaths: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const dirPath of dirPaths) {
    let names: string[];
    try {
      names = await readdir(dirPath, { recursive: true });
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') continue;
      throw err;
    }
    for (const name of names) {
      const base = name.split('/').pop() ?? name;
      if (base.startsWith('.') && base.endsWith('.part')) found.push(join(dirPath, name));
    }
  }
  return found;
}

/** The keys of an SFTP destination on the fixture, by URL, checked against the fixture's known_hosts. */
export function sftpDestination(
  sshd: SshdFixture,
  name: string,
  remoteDir: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name,
    url: `sftp://${sshd.username}@${sshd.host}:${sshd.port}${remoteDir}`,
    private_key: sshd.clientKeyPath,
    known_hosts: sshd.knownHostsPath,
    connect_timeout: '5s',
    operation_timeout: '10s',
    retries: 0,
    ...extra,
  };
}

/** Log lines at `error` level (50) or above. */
export function errorLines(logs: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((line) => typeof line.level === 'number' && line.level >= 50);
}

/** The pass-summary line of one name (destination or `(incoming)`) for one pass. */
export function passSummary(
  logs: readonly Record<string, unknown>[],
  name: string,
  passNumber = 1,
): Record<string, unknown> | undefined {
  return logs.find(
    (line) => line.event === 'pass-summary' && line.name === name && line.passNumber === passNumber,
  );
}
