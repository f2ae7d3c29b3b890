/**
 * 100,000 entries in one remote folder. Downloading them all would take minutes of
 * round trips and prove nothing more about the listing, so: a `--dry-run` lists and
 * plans every one of them (the whole listing, the ledger lookups, the selection), and
 * a real pass with `max_files_per_pass: 300` lists them all again and fetches the 300
 * first. The peak resident memory (VmHWM) of each process is polled from /proc.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AN_HOUR_AGO_MS,
  fetchedRemotePaths,
  type FetchRun,
  listFiles,
  summaryOf,
  withLogs,
} from '../support/fetcher-scenario.js';
import { collect, spawnCli } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { type FaultsServer, startFaultsServer } from './faults-kit.js';
import { checkInvariants } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

const ENTRY_COUNT = 100_000;
const FETCH_COUNT = 300;
const MAX_PEAK_RSS_BYTES = 300 * 1024 * 1024;

describe('faults: a huge remote folder', () => {
  let server: FaultsServer;
  let temp: TempDir;

  beforeAll(async () => {
    server = await startFaultsServer();
    temp = await makeTempDir('faults-big-');
  });
  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
  });

  it(scenarioTitle('hundred-thousand-entries'), { timeout: 120_000 }, async () => {
    const remoteDir = join(server.sshd.rootDir, 'many');
    mkdirSync(remoteDir);
    const originals = new Map<string, string>();
    const startedMs = Date.now();
    // Synchronous writes in a tight loop: about 2–3 s for the lot here.
    for (let index = 0; index < ENTRY_COUNT; index += 1) {
      const name = `f${String(index).padStart(6, '0')}.dat`;
      const content = `file ${index}\n`;
      writeFileSync(join(remoteDir, name), content);
      originals.set(name, createHash('sha256').update(content).digest('hex'));
    }
    const seconds = AN_HOUR_AGO_MS / 1000;
    utimesSync(remoteDir, seconds, seconds);
    const createMs = Date.now() - startedMs;
    const scenario = await server.writeConfig({
      dir: join(temp.path, 'local'),
      sources: [{ name: 'many', remoteDir, keys: { max_files_per_pass: FETCH_COUNT } }],
    });

    const dry = await runMeasured(['--dry-run']);
    expect(dry.run.code, dry.run.stderr.slice(-2000)).toBe(0);
    const planned = dry.run.stdout.split('\n').filter((line) => line.startsWith('would fetch '));
    // The whole folder is listed and selected; the plan is what one pass would fetch.
    expect(summaryOf(dry.run, 'many')).toMatchObject({
      listed: ENTRY_COUNT,
      selected: ENTRY_COUNT,
      waiting: ENTRY_COUNT,
    });
    expect(planned.length).toBe(FETCH_COUNT);
    expect(await listFiles(scenario.incoming)).toEqual([]);
    expect(dry.peakRssBytes).toBeLessThan(MAX_PEAK_RSS_BYTES);

    const real = await runMeasured([]);
    expect(real.run.code, real.run.stderr.slice(-2000)).toBe(0);
    expect(summaryOf(real.run, 'many')).toMatchObject({
      listed: ENTRY_COUNT,
      done: FETCH_COUNT,
      waiting: ENTRY_COUNT - FETCH_COUNT,
      failed: 0,
    });
    const expected = [...originals.keys()].sort().slice(0, FETCH_COUNT);
    expect(fetchedRemotePaths(real.run)).toEqual(expected.map((name) => join(remoteDir, name)));
    expect(real.peakRssBytes).toBeLessThan(MAX_PEAK_RSS_BYTES);
    await checkInvariants({
      context: '100,000 entries',
      originals,
      remoteDir,
      incoming: { dir: join(scenario.incoming, 'many'), expect: 'some' },
      archive: { dir: join(scenario.archive ?? '', 'many'), expect: 'some' },
      secrets: server.secrets,
      logDirs: [scenario.logDir],
      outputs: [dry.run.stdout, dry.run.stderr, real.run.stdout, real.run.stderr],
    });
    console.log(
      `100,000 entries: created in ${createMs} ms; dry run ${dry.run.durationMs} ms, peak RSS ${mib(dry.peakRssBytes)} MiB; ` +
        `real pass (${FETCH_COUNT} fetched) ${real.run.durationMs} ms, peak RSS ${mib(real.peakRssBytes)} MiB`,
    );

    async function runMeasured(args: readonly string[]): Promise<{ run: FetchRun; peakRssBytes: number }> {
      const child = spawnCli(
        'fetch-files',
        ['--config', scenario.configPath, '--stop-on-loop', '1', ...args],
        {
          env: server.env,
        },
      );
      const peak = pollPeakRss(child);
      const run = withLogs(await collect(child, 90_000));
      return { run, peakRssBytes: peak.stop() };
    }
  });
});

/** Polls VmHWM (the kernel's own peak RSS of the process) until stopped; returns the last value read. */
function pollPeakRss(child: ChildProcess): { stop(): number } {
  let peakBytes = 0;
  const read = (): void => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kib = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
      peakBytes = Math.max(peakBytes, kib * 1024);
    } catch {
      // Exited: the last value read stands.
    }
  };
  const timer = setInterval(read, 25);
  child.once('exit', () => clearInterval(timer));
  return {
    stop() {
      clearInterval(timer);
      expect(peakBytes, 'VmHWM was read at least once').toBeGreaterThan(0);
      return peakBytes;
    },
  };
}

function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 1024);
}
