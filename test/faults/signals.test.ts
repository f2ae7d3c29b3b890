/**
 * Signals at the worst moments: SIGTERM and SIGKILL while a download is half
 * written, and while the archive copy is being made (caught the instant its
 * temporary appears, by inotify, and frozen with SIGSTOP so the moment cannot pass);
 * and the copier killed mid-copy. After each, and after the run that follows, the
 * invariants of DESIGN.md hold.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopierScenario } from '../support/copier-scenario.js';
import {
  type FetcherScenario,
  type FetchRun,
  fetchedRemotePaths,
  hashTree,
  listFiles,
  listTemporaries,
  makeRemoteTree,
  SLOW_TRANSFER_KEYS,
  summaryOf,
  waitFor,
  withLogs,
} from '../support/fetcher-scenario.js';
import { type CliResult, collect, spawnCli } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { type FaultsServer, startFaultsServer } from './faults-kit.js';
import { checkInvariants, type InvariantSpec, type Presence } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

describe('faults: signals', () => {
  let server: FaultsServer;
  let temp: TempDir;
  let counter = 0;

  beforeAll(async () => {
    server = await startFaultsServer();
    temp = await makeTempDir('faults-signals-');
  });
  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
  });

  async function setUp(
    label: string,
    files: Record<string, Buffer>,
    sourceKeys: Record<string, unknown>,
    topKeys: Record<string, unknown> = {},
  ): Promise<{ scenario: FetcherScenario; remoteDir: string; originals: Map<string, string> }> {
    counter += 1;
    const remoteDir = join(server.sshd.rootDir, `${label}-${counter}`);
    await makeRemoteTree(remoteDir, files);
    const scenario = await server.writeConfig({
      dir: join(temp.path, `${label}-${counter}`),
      keys: topKeys,
      sources: [{ name: 'sig', remoteDir, keys: sourceKeys }],
    });
    return { scenario, remoteDir, originals: await hashTree(remoteDir) };
  }

  function invariants(
    scenario: FetcherScenario,
    remoteDir: string,
    originals: Map<string, string>,
    results: readonly CliResult[],
    context: string,
    presence: Presence,
    allowTemporaries = false,
  ): InvariantSpec {
    return {
      context,
      originals,
      remoteDir,
      incoming: { dir: join(scenario.incoming, 'sig'), expect: presence },
      archive: { dir: join(scenario.archive ?? '', 'sig'), expect: presence },
      allowTemporaries,
      secrets: server.secrets,
      logDirs: [scenario.logDir],
      outputs: results.flatMap((result) => [result.stdout, result.stderr]),
    };
  }

  function spawnFetch(scenario: FetcherScenario): { child: ChildProcess; done: Promise<FetchRun> } {
    const child = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '1'], {
      env: server.env,
    });
    return { child, done: collect(child, 60_000).then(withLogs) };
  }

  /** Resolves once a download's temporary in incoming holds at least `minBytes`. */
  async function halfWritten(scenario: FetcherScenario, minBytes: number): Promise<string> {
    return waitFor('a half-written download', async () => {
      for (const path of await listTemporaries(scenario.incoming)) {
        const size = await stat(path).then(
          (stats) => stats.size,
          () => 0,
        );
        if (size >= minBytes) return path;
      }
      return undefined;
    });
  }

  /**
   * Stops `child` (SIGSTOP) the instant a temporary appears in `dir`: inotify tells
   * this process within a millisecond, long before a copy of many MiB can end and be
   * renamed. Resolves with the temporary's name once the child is stopped.
   */
  function freezeOnTemporary(dir: string, child: ChildProcess, ofName = ''): Promise<string> {
    return new Promise((resolve, reject) => {
      const watcher = watch(dir, (_event, name) => {
        const fileName = name?.toString() ?? '';
        if (!fileName.startsWith(`.${ofName}`) || !fileName.endsWith('.part')) return;
        watcher.close();
        child.kill('SIGSTOP');
        resolve(join(dir, fileName));
      });
      watcher.on('error', reject);
      child.once('exit', () => {
        watcher.close();
        reject(new Error(`the child ended before a temporary appeared in ${dir}`));
      });
    });
  }

  it(scenarioTitle('sigterm-mid-transfer'), async () => {
    const { scenario, remoteDir, originals } = await setUp(
      'term',
      { 'a.bin': randomBytes(4 * 1024 * 1024), 'b.bin': randomBytes(100_000) },
      { ...SLOW_TRANSFER_KEYS, after_fetch: 'delete' },
      { shutdown_grace: '1s', concurrency_limit: 1 },
    );
    const { child, done } = spawnFetch(scenario);
    await halfWritten(scenario, 1);
    const signalledAtMs = Date.now();
    child.kill('SIGTERM');
    const run = await done;
    expect(run.code, run.stderr).toBe(130);
    expect(Date.now() - signalledAtMs).toBeLessThan(1_000 + 4_000);
    expect(summaryOf(run, 'sig')).toMatchObject({ result: 'interrupted' });
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'after SIGTERM', 'some'));

    const next = await server.fetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    await checkInvariants(invariants(scenario, remoteDir, originals, [run, next], 'next run', 'all'));
    expect(await listFiles(remoteDir)).toEqual([]);
  });

  it(scenarioTitle('sigkill-mid-transfer'), async () => {
    const { scenario, remoteDir, originals } = await setUp(
      'kill',
      { 'a.bin': randomBytes(16 * 1024 * 1024) },
      { ...SLOW_TRANSFER_KEYS, after_fetch: 'delete' },
    );
    const { child, done } = spawnFetch(scenario);
    const tempPath = await halfWritten(scenario, 64 * 1024);
    child.kill('SIGKILL');
    const run = await done;
    expect(run.signal).toBe('SIGKILL');
    expect(await listTemporaries(scenario.incoming)).toEqual([tempPath]);
    expect((await stat(tempPath)).size).toBeLessThan(16 * 1024 * 1024);
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'after SIGKILL', 'none', true));
    expect(await listFiles(remoteDir)).toEqual(['a.bin']);

    const next = await server.fetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    expect(next.logs.some((line) => String(line.msg).startsWith('removed 1 leftover temporar'))).toBe(true);
    expect(fetchedRemotePaths(next)).toEqual([join(remoteDir, 'a.bin')]);
    await checkInvariants(invariants(scenario, remoteDir, originals, [run, next], 'next run', 'all'));
    expect(await listFiles(remoteDir)).toEqual([]);
  });

  /** A big file, so the archive copy lasts long enough to be caught; its folder made first, to be watched. */
  async function setUpArchive(label: string): Promise<Awaited<ReturnType<typeof setUp>>> {
    const set = await setUp(
      label,
      { 'big.bin': randomBytes(48 * 1024 * 1024), 'small.bin': randomBytes(1000) },
      { after_fetch: 'delete' },
      { concurrency_limit: 1, shutdown_grace: '5s' },
    );
    await mkdir(join(set.scenario.archive ?? '', 'sig'), { recursive: true });
    return set;
  }

  it(scenarioTitle('sigterm-mid-archive'), async () => {
    const { scenario, remoteDir, originals } = await setUpArchive('term-archive');
    const { child, done } = spawnFetch(scenario);
    const archiveTemp = await freezeOnTemporary(join(scenario.archive ?? '', 'sig'), child);
    try {
      // Frozen mid-archive: the download is whole under its temporary name, the archive copy under way.
      expect(await listTemporaries(scenario.incoming)).toHaveLength(1);
      expect(await listTemporaries(scenario.archive ?? '')).toEqual([archiveTemp]);
      await checkInvariants(
        invariants(scenario, remoteDir, originals, [], 'frozen mid-archive', 'some', true),
      );
    } finally {
      child.kill('SIGTERM');
      child.kill('SIGCONT');
    }
    const run = await done;
    expect(run.code, run.stderr).toBe(130);
    expect(summaryOf(run, 'sig').result).toBe('interrupted');
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'after SIGTERM', 'some'));

    const next = await server.fetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    // Only what the interrupted run did not finish.
    const fetchedBefore = fetchedRemotePaths(run);
    expect([...fetchedBefore, ...fetchedRemotePaths(next)].sort()).toEqual(
      ['big.bin', 'small.bin'].map((name) => join(remoteDir, name)),
    );
    await checkInvariants(invariants(scenario, remoteDir, originals, [run, next], 'next run', 'all'));
    expect(await listFiles(remoteDir)).toEqual([]);
  });

  it(scenarioTitle('sigkill-mid-archive'), async () => {
    const { scenario, remoteDir, originals } = await setUpArchive('kill-archive');
    const { child, done } = spawnFetch(scenario);
    const archiveTemp = await freezeOnTemporary(join(scenario.archive ?? '', 'sig'), child);
    child.kill('SIGKILL');
    const run = await done;
    expect(run.signal).toBe('SIGKILL');
    expect(await listTemporaries(scenario.archive ?? '')).toEqual([archiveTemp]);
    expect(await listTemporaries(scenario.incoming)).toHaveLength(1);
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'after SIGKILL', 'none', true));
    expect(await listFiles(remoteDir)).toEqual(['big.bin', 'small.bin']);

    const next = await server.fetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    expect(fetchedRemotePaths(next)).toEqual(['big.bin', 'small.bin'].map((name) => join(remoteDir, name)));
    await checkInvariants(invariants(scenario, remoteDir, originals, [run, next], 'next run', 'all'));
    expect(await listFiles(remoteDir)).toEqual([]);
  });

  it(scenarioTitle('sigkill-copier-mid-copy'), async () => {
    const copier = await CopierScenario.create('faults-copier-kill-');
    try {
      const big = randomBytes(96 * 1024 * 1024);
      const small = randomBytes(2000);
      await copier.addFile('big.bin', big);
      await copier.addFile('small.bin', small);
      const originals = await hashTree(copier.incoming);
      const destinations = [copier.path('out', 'a'), copier.path('out', 'b')];
      for (const dir of destinations) await mkdir(dir, { recursive: true });
      await copier.writeConfig({
        concurrency_limit: 1,
        destinations: destinations.map((path, index) => ({ name: `d${index}`, path, verify: 'sha256' })),
      });
      const spec = (results: readonly CliResult[], context: string, allowTemporaries: boolean) => ({
        context,
        originals,
        incoming: { dir: copier.incoming, expect: 'some' as const },
        destinations: destinations.map((dir) => ({ dir, expect: 'some' as const })),
        copierRan: true,
        allowTemporaries,
        logDirs: [copier.logDir],
        outputs: results.flatMap((result) => [result.stdout, result.stderr]),
      });

      const child = copier.spawn(['--stop-on-loop', '1']);
      const done = collect(child, 60_000);
      // A copy of the big file, to whichever destination comes first, is the one to cut.
      const caught = await Promise.race(destinations.map((dir) => freezeOnTemporary(dir, child, 'big.bin')));
      child.kill('SIGKILL');
      const killed = await done;
      expect(killed.signal).toBe('SIGKILL');
      expect(caught).toMatch(/\/\.big\.bin\..*\.part$/);
      expect((await hashTree(copier.incoming)).get('big.bin'), 'still in incoming').toBe(
        originals.get('big.bin'),
      );
      await checkInvariants(spec([killed], 'after SIGKILL', true));

      const next = await copier.run(['--stop-on-loop', '1']);
      expect(next.code, next.stderr).toBe(0);
      await checkInvariants({
        ...spec([killed, next], 'next run', false),
        incoming: { dir: copier.incoming, expect: 'none' },
        destinations: destinations.map((dir) => ({ dir, expect: 'all' as const })),
      });
    } finally {
      await copier.remove();
    }
  });
});
