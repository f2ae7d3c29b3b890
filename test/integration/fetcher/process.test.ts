/**
 * The fetcher as a process: the per-pass summary, exit codes 0/1/2/130, the state_dir
 * lock, SIGTERM during a slow transfer, a source that is down or presents the wrong
 * host key while the other source goes on.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchedRemotePaths,
  hashTree,
  linesWithCode,
  listFiles,
  listTemporaries,
  makeRemoteTree,
  pathExists,
  runFetch,
  SLOW_TRANSFER_KEYS,
  sha256Of,
  summaryOf,
  waitFor,
  withLogs,
  writeFetcherConfig,
} from '../../support/fetcher-scenario.js';
import { cliPath, collect, runCli, spawnCli } from '../../support/run-cli.js';
import { fingerprintOf, freePort, type SshdFixture, startSshd } from '../../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

describe('fetch-files: the process', () => {
  let sshd: SshdFixture;
  let temp: TempDir;
  let counter = 0;
  const fresh = (label: string): { remoteDir: string; dir: string } => {
    counter += 1;
    return {
      remoteDir: join(sshd.rootDir, `${label}-${counter}`),
      dir: join(temp.path, `${label}-${counter}`),
    };
  };

  beforeAll(async () => {
    sshd = await startSshd();
    temp = await makeTempDir('fetch-process-');
  });
  afterAll(async () => {
    await sshd?.stop();
    await temp?.remove();
  });

  it('logs one pass-summary line per source with every figure, and exits 0 when all went through', async () => {
    const { remoteDir, dir } = fresh('summary');
    await makeRemoteTree(remoteDir, {
      'a.bin': randomBytes(300_000),
      'b.bin': randomBytes(200_000),
      'c.txt': 'no',
    });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'sum', remoteDir, keys: { include: ['*.bin'] } }],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(0);
    expect(run.summaries).toHaveLength(1);
    const summary = summaryOf(run, 'sum');
    expect(summary).toMatchObject({
      level: 30,
      app: 'fetch-files',
      event: 'pass-summary',
      passNumber: 1,
      name: 'sum',
      result: 'ok',
      listed: 3,
      selected: 2,
      done: 2,
      alreadyDone: 0,
      skipped: 1,
      failed: 0,
      waiting: 0,
      bytes: 500_000,
      msg: 'pass 1 sum: 2 done, 1 skipped, 0 failed, 0 waiting',
    });
    expect(summary.durationMs).toBeGreaterThan(0);
    expect(summary.mbPerSec).toBeCloseTo(500_000 / 1e6 / (summary.durationMs / 1000), 1);
    // The same line lands in the info log file.
    const logged = (await readFile(join(scenario.logDir, 'all-info.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.event === 'pass-summary');
    expect(logged).toEqual([expect.objectContaining({ name: 'sum', done: 2, bytes: 500_000 })]);
    // status reads the pass back from the ledger.
    const status = await runCli('fetch-files', ['status', '--config', scenario.configPath, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('"sum"');
  });

  it('one source down (wrong port) fails alone: exit 1, the other source fetched', async () => {
    const good = fresh('good');
    await makeRemoteTree(good.remoteDir, { 'ok.csv': 'ok' });
    const scenario = await writeFetcherConfig({
      sshd,
      dir: good.dir,
      sources: [
        { name: 'down', remoteDir: '/nowhere', keys: { port: await freePort(), connect_timeout: '2s' } },
        { name: 'good', remoteDir: good.remoteDir },
      ],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(1);
    expect(await listFiles(scenario.incoming)).toEqual(['good/ok.csv']);
    expect(summaryOf(run, 'good')).toMatchObject({ result: 'ok', done: 1 });
    expect(summaryOf(run, 'down')).toMatchObject({ result: 'failed', done: 0 });
    expect(summaryOf(run, 'down').error).toMatch(/^E_CONNECTION: /);
    const failure = run.logs.find(
      (line) => line.msg === `source down failed: ${summaryOf(run, 'down').error}`,
    );
    expect(failure).toMatchObject({ level: 50, source: 'down', err: { code: 'E_CONNECTION' } });
  });

  it('a wrong host key fails that source with E_HOSTKEY naming both fingerprints; the other source is fetched', async () => {
    const good = fresh('hk-good');
    const other = fresh('hk-bad');
    await makeRemoteTree(good.remoteDir, { 'ok.csv': 'ok' });
    await makeRemoteTree(other.remoteDir, { 'never.csv': 'never' });
    const impostorKey = join(temp.path, `impostor-${counter}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', impostorKey]);
    const impostorFingerprint = fingerprintOf(await readFile(`${impostorKey}.pub`, 'utf8'));
    const scenario = await writeFetcherConfig({
      sshd,
      dir: good.dir,
      sources: [
        { name: 'good', remoteDir: good.remoteDir },
        {
          name: 'pinned-wrong',
          remoteDir: other.remoteDir,
          keys: { known_hosts: undefined, host_key: impostorFingerprint },
        },
      ],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(1);
    expect(await listFiles(scenario.incoming)).toEqual(['good/ok.csv']);
    const error = summaryOf(run, 'pinned-wrong').error ?? '';
    expect(error).toMatch(/^E_HOSTKEY: /);
    expect(error).toContain(sshd.hostKeyFingerprint);
    expect(error).toContain(impostorFingerprint);
    expect(linesWithCode(run, 'E_HOSTKEY')).toEqual([
      expect.objectContaining({ level: 50, source: 'pinned-wrong' }),
    ]);
    expect(await listFiles(other.remoteDir)).toEqual(['never.csv']);
  });

  it('exit 2 for a config mistake, naming the file and key', async () => {
    const { dir } = fresh('bad-config');
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'x', remoteDir: '/x', keys: { after_fetch: 'shred' } }],
    });
    const run = await runFetch(scenario);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `${scenario.configPath}: sources[0].after_fetch: expected one of keep, delete, move`,
    );
    expect(await pathExists(scenario.incoming)).toBe(false);
  });

  it('a ledger that cannot be opened: exit 2 with one line naming it, and no lock left behind', async () => {
    const { remoteDir, dir } = fresh('no-ledger');
    await makeRemoteTree(remoteDir, { 'a.csv': 'a' });
    const scenario = await writeFetcherConfig({ sshd, dir, sources: [{ name: 'nl', remoteDir }] });
    // A folder where the ledger file should be.
    await mkdir(join(scenario.stateDir, 'fetch-files.sqlite'), { recursive: true });

    const run = await runFetch(scenario);

    expect(run.code).toBe(2);
    const operatorLines = run.stderr.split('\n').filter((line) => line.startsWith('fetch-files: '));
    expect(operatorLines).toHaveLength(1);
    expect(operatorLines[0]).toContain(join(scenario.stateDir, 'fetch-files.sqlite'));
    expect(await pathExists(join(scenario.stateDir, 'fetch-files.lock'))).toBe(false);
    expect(await listFiles(remoteDir)).toEqual(['a.csv']);
  });

  it('a second fetcher on the same state_dir exits 2 naming the holder; SIGTERM mid-transfer exits 130 within the grace', async () => {
    const { remoteDir, dir } = fresh('slow');
    const big = randomBytes(40 * 1024 * 1024);
    await makeRemoteTree(remoteDir, { 'big.bin': big });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      keys: { shutdown_grace: '1s' },
      sources: [{ name: 'slow', remoteDir, keys: { ...SLOW_TRANSFER_KEYS, after_fetch: 'delete' } }],
    });
    const holder = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '1']);
    const holderDone = collect(holder, 60_000);
    const [tempPath] = await waitFor('the download to start', async () => {
      const found = await listTemporaries(scenario.incoming);
      return found.length > 0 ? found : undefined;
    });

    const second = await runFetch(scenario);
    expect(second.code).toBe(2);
    const operatorLine = second.stderr.split('\n').find((line) => line.startsWith('fetch-files: E_LOCKED'));
    expect(operatorLine).toContain(`pid ${holder.pid}`);
    expect(operatorLine).toContain(join(scenario.stateDir, 'fetch-files.lock'));
    expect(linesWithCode(second, 'E_LOCKED')[0]).toMatchObject({ err: { holderPid: holder.pid } });

    const signalledAtMs = Date.now();
    holder.kill('SIGTERM');
    const stopped = withLogs(await holderDone);
    const stopMs = Date.now() - signalledAtMs;

    expect(stopped.code, stopped.stderr).toBe(130);
    // 1 s of grace, then the transfer is aborted; a margin for a busy machine.
    expect(stopMs).toBeLessThan(1_000 + 2_500);
    expect(stopMs).toBeGreaterThanOrEqual(900);
    expect(summaryOf(stopped, 'slow')).toMatchObject({ result: 'interrupted', done: 0, waiting: 1 });
    expect(stopped.logs.find((line) => line.signal === 'SIGTERM')).toMatchObject({
      level: 40,
      graceMs: 1000,
    });
    expect(await pathExists(tempPath ?? '')).toBe(false);
    expect(await listFiles(remoteDir)).toEqual(['big.bin']);
    // The lock went with it.
    expect(await pathExists(join(scenario.stateDir, 'fetch-files.lock'))).toBe(false);

    // The next run starts clean and fetches the file whole (fast settings this time).
    await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'slow', remoteDir, keys: { after_fetch: 'delete' } }],
    });
    const next = await runFetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    expect(fetchedRemotePaths(next)).toEqual([join(remoteDir, 'big.bin')]);
    expect(await hashTree(join(scenario.incoming, 'slow'))).toEqual(new Map([['big.bin', sha256Of(big)]]));
    expect(await listTemporaries(scenario.incoming, scenario.archive ?? '')).toEqual([]);
    expect(await listFiles(remoteDir)).toEqual([]);
  });

  it('SIGTERM while the last transfer can still finish within the grace: it is committed, then exit 130', async () => {
    const { remoteDir, dir } = fresh('grace');
    const content = randomBytes(4 * 1024 * 1024);
    await makeRemoteTree(remoteDir, { 'medium.bin': content });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      keys: { shutdown_grace: '20s' },
      sources: [{ name: 'grace', remoteDir, keys: SLOW_TRANSFER_KEYS }],
    });
    const child = spawnCli('fetch-files', ['--config', scenario.configPath]);
    const done = collect(child, 60_000);
    await waitFor('the download to start', async () => (await listTemporaries(scenario.incoming)).length > 0);
    child.kill('SIGTERM');
    const run = withLogs(await done);

    expect(run.code, run.stderr).toBe(130);
    expect(fetchedRemotePaths(run)).toEqual([join(remoteDir, 'medium.bin')]);
    expect(await hashTree(join(scenario.incoming, 'grace'))).toEqual(
      new Map([['medium.bin', sha256Of(content)]]),
    );
    expect(run.summaries).toHaveLength(1);
    expect(summaryOf(run, 'grace')).toMatchObject({ result: 'interrupted', done: 1 });
  });

  it('a stale lock left by a killed fetcher is taken over', async () => {
    const { remoteDir, dir } = fresh('stale');
    await makeRemoteTree(remoteDir, { 'a.csv': 'a' });
    const scenario = await writeFetcherConfig({ sshd, dir, sources: [{ name: 'stale', remoteDir }] });
    await mkdir(scenario.stateDir, { recursive: true });
    // What a SIGKILLed holder leaves: a lock naming a pid that no longer runs.
    const gone = spawnCli('fetch-files', ['--version']);
    await collect(gone, 10_000);
    await writeFile(
      join(scenario.stateDir, 'fetch-files.lock'),
      `${JSON.stringify({ pid: gone.pid, host: (await import('node:os')).hostname(), sinceMs: Date.now() - 1000, command: 'fetch-files', commandLine: 'fetch-files', token: 'dead' })}\n`,
    );
    const run = await runFetch(scenario);
    expect(run.code, run.stderr).toBe(0);
    expect(fetchedRemotePaths(run)).toEqual([join(remoteDir, 'a.csv')]);
  });

  it('on a terminal, the summary is also printed as a table', async (context) => {
    if (!existsSync('/usr/bin/script'))
      context.skip('util-linux script(1), which provides the terminal, is missing');
    const { remoteDir, dir } = fresh('tty');
    await makeRemoteTree(remoteDir, { 'a.csv': 'a', 'b.csv': 'bb', 'c.txt': 'not taken' });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'tty', remoteDir, keys: { include: ['*.csv'] } }],
    });
    const command = [
      process.execPath,
      cliPath('fetch-files'),
      '--config',
      scenario.configPath,
      '--stop-on-loop',
      '1',
    ];
    const child = spawn('/usr/bin/script', ['-qec', command.join(' '), '/dev/null'], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const result = await collect(child, 30_000);

    expect(result.code, result.stdout).toBe(0);
    const lines = result.stdout.split(/\r?\n/);
    const header = lines.findIndex((line) =>
      /^source\s+listed\s+selected\s+fetched\s+skipped\s+failed\s+waiting\s+bytes\s+MB\/s\s+time\s*$/.test(
        line,
      ),
    );
    expect(header, result.stdout).toBeGreaterThanOrEqual(0);
    expect(lines[header + 1]).toMatch(/^tty\s+3\s+2\s+2\s+1\s+0\s+0\s+3 B\s+[\d.]+\s+\d+ms\s*$/);
  });
});
