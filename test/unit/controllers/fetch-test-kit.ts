/**
 * Controller-level fetcher tests: an in-memory remote, a real local temp folder for
 * incoming/archive, a real SQLite ledger in a temp state_dir, a logger whose lines are
 * kept as parsed JSON.
 */
import { join } from 'node:path';
import pLimit from 'p-limit';
import { pino } from 'pino';
import type { FetcherConfig, SourceConfig } from '../../../src/config/index.js';
import { type FetchSourceHandle, runFetchPass } from '../../../src/controllers/fetch-pass.js';
import type { PassReport } from '../../../src/controllers/pass-report.js';
import { openSqliteLedger, type SqliteLedger } from '../../../src/ledger/index.js';
import type { Logger } from '../../../src/log/index.js';
import { createLocalStorage } from '../../../src/storage/index.js';
import type { Storage } from '../../../src/storage/storage.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

export function sourceConfig(name: string, overrides: Partial<SourceConfig> = {}): SourceConfig {
  return {
    name,
    enabled: true,
    host: 'memory',
    port: 22,
    username: 'test',
    auth: { kind: 'agent', agentSocketPath: '/nonexistent' },
    hostKey: { kind: 'insecure' },
    connections: 1,
    connectTimeoutMs: 1_000,
    operationTimeoutMs: 1_000,
    keepaliveIntervalMs: 0,
    retries: 0,
    readConcurrency: 1,
    chunkSizeBytes: 32 * 1024,
    remoteDir: `/${name}`,
    recursive: true,
    include: [],
    exclude: [],
    minAgeMs: 0,
    followLinks: false,
    afterFetch: 'keep',
    verify: 'size',
    incomingLayout: '{source}/{path}',
    ...overrides,
  };
}

export interface FetchKit {
  temp: TempDir;
  incoming: string;
  archive: string;
  stateDir: string;
  ledger: SqliteLedger;
  local: Storage;
  lines: Record<string, unknown>[];
  log: Logger;
  config(overrides?: Partial<FetcherConfig>, sources?: readonly SourceConfig[]): FetcherConfig;
  /** One pass over `handles` (every source of `config` is recovered, only these are fetched). */
  pass(
    config: FetcherConfig,
    handles: readonly FetchSourceHandle[],
    options?: { local?: Storage; concurrency?: number; dryRun?: boolean },
  ): Promise<PassReport[]>;
  close(): Promise<void>;
}

export async function createFetchKit(): Promise<FetchKit> {
  const temp = await makeTempDir('fetch-unit-');
  const incoming = join(temp.path, 'incoming');
  const archive = join(temp.path, 'archive');
  const stateDir = join(temp.path, 'state');
  const ledger = openSqliteLedger({ stateDir, fileName: 'fetch-files.sqlite' });
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  const local = createLocalStorage();
  return {
    temp,
    incoming,
    archive,
    stateDir,
    ledger,
    local,
    lines,
    log,
    config(overrides = {}, sources = []) {
      return {
        kind: 'fetcher',
        configPath: join(temp.path, 'fetcher.yml'),
        concurrencyLimit: 4,
        intervalMs: 1_000,
        shutdownGraceMs: 1_000,
        stateDir,
        logDir: join(temp.path, 'log'),
        incoming,
        archive,
        archiveLayout: '{source}/{path}',
        minFreeSpaceBytes: 0,
        sources,
        ...overrides,
      };
    },
    pass(config, handles, options = {}) {
      return runFetchPass({
        config,
        sources: handles,
        local: options.local ?? local,
        ledger,
        log,
        limit: pLimit(options.concurrency ?? config.concurrencyLimit),
        dryRun: options.dryRun ?? false,
        stopSignal: new AbortController().signal,
        abortSignal: new AbortController().signal,
      });
    },
    async close() {
      await ledger.close();
      await temp.remove();
    },
  };
}

/** Log lines of a message prefix. */
export function linesStartingWith(
  lines: Record<string, unknown>[],
  prefix: string,
): Record<string, unknown>[] {
  return lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith(prefix));
}
