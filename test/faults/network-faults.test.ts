/**
 * The network misbehaving between the fetcher (the real CLI) and the real sshd: a
 * TCP proxy on 127.0.0.1 cuts the connection after N bytes (during the handshake,
 * the listing, and at several points of a file, either direction), stalls, freezes;
 * and sshd itself goes away mid-pass and comes back. After each fault, and at the
 * end, the invariants of DESIGN.md hold.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AN_HOUR_AGO_MS,
  type FetcherScenario,
  type FetchRun,
  fetchedRemotePaths,
  hashTree,
  listTemporaries,
  makeRemoteTree,
  SLOW_TRANSFER_KEYS,
  summaryOf,
  waitFor,
  withLogs,
} from '../support/fetcher-scenario.js';
import { type FaultTcpProxy, startFaultTcpProxy } from '../support/fault-tcp-proxy.js';
import { collect, spawnCli } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { type FaultsServer, startFaultsServer } from './faults-kit.js';
import { checkInvariants, expectErrorLines, type InvariantSpec, type Presence } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

describe('faults: the network', () => {
  let server: FaultsServer;
  let proxy: FaultTcpProxy;
  let temp: TempDir;
  let counter = 0;
  let hostLabel: string;

  beforeAll(async () => {
    server = await startFaultsServer();
    proxy = await startFaultTcpProxy(server.sshd.port);
    temp = await makeTempDir('faults-network-');
    hostLabel = `${server.sshd.username}@127.0.0.1:${proxy.port}`;
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
    await temp?.remove();
  });

  /** A fresh remote folder and local folder, and a config whose one source goes through the proxy. */
  async function setUp(
    label: string,
    files: Record<string, string | Buffer>,
    sourceKeys: Record<string, unknown> = {},
    topKeys: Record<string, unknown> = {},
  ): Promise<{ scenario: FetcherScenario; remoteDir: string; originals: Map<string, string> }> {
    counter += 1;
    const remoteDir = join(server.sshd.rootDir, `${label}-${counter}`);
    await makeRemoteTree(remoteDir, files);
    const scenario = await server.writeConfig({
      dir: join(temp.path, `${label}-${counter}`),
      keys: topKeys,
      sources: [
        {
          name: 'net',
          remoteDir,
          keys: {
            port: proxy.port,
            // The proxy's port is not in known_hosts: pin the fixture's key instead.
            known_hosts: undefined,
            host_key: server.sshd.hostKeyFingerprint,
            connections: 1,
            retries: 0,
            ...sourceKeys,
          },
        },
      ],
    });
    return { scenario, remoteDir, originals: await hashTree(remoteDir) };
  }

  function invariants(
    scenario: FetcherScenario,
    remoteDir: string,
    originals: Map<string, string>,
    runs: readonly FetchRun[],
    context: string,
    presence: Presence = 'all',
  ): InvariantSpec {
    return {
      context,
      originals,
      remoteDir,
      incoming: { dir: join(scenario.incoming, 'net'), expect: presence },
      archive: { dir: join(scenario.archive ?? '', 'net'), expect: presence },
      secrets: server.secrets,
      logDirs: [scenario.logDir],
      outputs: runs.flatMap((run) => [run.stdout, run.stderr]),
    };
  }

  /** Bytes the proxy passed each way during `run`. */
  async function measured<T>(run: () => Promise<T>): Promise<{ result: T; down: number; up: number }> {
    const before = proxy.bytes;
    const result = await run();
    const after = proxy.bytes;
    return { result, down: after.down - before.down, up: after.up - before.up };
  }

  it(scenarioTitle('cut-handshake'), async () => {
    const { scenario, remoteDir, originals } = await setUp('handshake', {
      'a.csv': 'a',
      'b.csv': randomBytes(50_000),
    });
    proxy.cutAfter({ direction: 'down', afterBytes: 600 });
    const cutsBefore = proxy.cuts;
    const first = await server.fetch(scenario);

    expect(proxy.cuts, 'the cut fired').toBeGreaterThan(cutsBefore);
    expect(first.code, first.stderr).toBe(1);
    expect(fetchedRemotePaths(first)).toEqual([]);
    expect(summaryOf(first, 'net').error).toMatch(/^E_CONNECTION: .* — /);
    expectErrorLines(first.logs, { code: 'E_CONNECTION', host: hostLabel }, 'handshake cut');
    await checkInvariants(invariants(scenario, remoteDir, originals, [first], 'after the cut', 'some'));

    const second = await server.fetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    await checkInvariants(invariants(scenario, remoteDir, originals, [first, second], 'next pass'));
  });

  it(scenarioTitle('cut-listing'), async () => {
    const files: Record<string, string> = { 'keep-1.csv': 'one', 'keep-2.csv': 'two' };
    for (let index = 0; index < 3000; index += 1) files[`noise-${String(index).padStart(5, '0')}.skip`] = '';
    const { scenario, remoteDir } = await setUp('listing', files, {
      include: ['*.csv'],
      after_fetch: 'delete',
    });
    const originals = new Map(
      [...(await hashTree(remoteDir))].filter(([relPath]) => relPath.endsWith('.csv')),
    );
    // How many bytes the handshake and the whole listing take, from a dry run.
    const calibration = await measured(() => server.fetch(scenario, ['--dry-run']));
    expect(calibration.result.code, calibration.result.stderr).toBe(0);
    expect(calibration.down).toBeGreaterThan(100_000);

    proxy.cutAfter({ direction: 'down', afterBytes: Math.round(calibration.down / 2) });
    const first = await server.fetch(scenario);
    expect(first.code, first.stderr).toBe(1);
    expect(fetchedRemotePaths(first)).toEqual([]);
    const lines = expectErrorLines(first.logs, { code: 'E_CONNECTION', host: hostLabel }, 'listing cut');
    expect(
      lines.some((line) => String(line.msg).includes(remoteDir)),
      'the folder is named',
    ).toBe(true);
    await checkInvariants(invariants(scenario, remoteDir, originals, [first], 'after the cut', 'none'));

    const second = await server.fetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    expect(fetchedRemotePaths(second)).toEqual([
      join(remoteDir, 'keep-1.csv'),
      join(remoteDir, 'keep-2.csv'),
    ]);
    await checkInvariants(invariants(scenario, remoteDir, originals, [first, second], 'next pass'));
  });

  it(scenarioTitle('cut-mid-file'), { timeout: 90_000 }, async () => {
    const content = randomBytes(3 * 1024 * 1024);
    const points = [
      { direction: 'down', fraction: 0.02 },
      { direction: 'down', fraction: 0.5 },
      { direction: 'down', fraction: 0.98 },
      { direction: 'up', fraction: 0.5 },
    ] as const;
    let full: { down: number; up: number } | undefined;
    for (const point of points) {
      const context = `cut ${point.direction} at ${point.fraction * 100}%`;
      const { scenario, remoteDir, originals } = await setUp(
        `file-${point.direction}`,
        { 'big.bin': content },
        {
          after_fetch: 'delete',
        },
      );
      const base = await measured(() => server.fetch(scenario, ['--dry-run']));
      expect(base.result.code, base.result.stderr).toBe(0);
      // The first point measures a whole pass; every point cuts within the file's own bytes.
      const wholeDown = full ? full.down : base.down + content.length;
      const wholeUp = full ? full.up : base.up + 2_000;
      if (point.direction === 'up')
        expect(wholeUp - base.up, 'request bytes of the download').toBeGreaterThan(500);
      const afterBytes =
        point.direction === 'down'
          ? Math.round(base.down + point.fraction * (wholeDown - base.down))
          : Math.round(base.up + point.fraction * (wholeUp - base.up));
      proxy.cutAfter({ direction: point.direction, afterBytes });
      const cutsBefore = proxy.cuts;
      const first = await server.fetch(scenario);
      expect(proxy.cuts, `${context}: the cut fired`).toBeGreaterThan(cutsBefore);
      expect(first.code, `${context}\n${first.stderr}`).toBe(1);
      expect(fetchedRemotePaths(first), context).toEqual([]);
      expectErrorLines(
        first.logs,
        { code: 'E_CONNECTION', host: hostLabel, path: join(remoteDir, 'big.bin') },
        context,
      );
      await checkInvariants(
        invariants(scenario, remoteDir, originals, [first], `${context}, after the cut`, 'none'),
      );

      const second = await measured(() => server.fetch(scenario));
      expect(second.result.code, `${context}\n${second.result.stderr}`).toBe(0);
      // A whole pass: its own handshake and listing (about the dry run's bytes), then the file.
      full ??= { down: second.down, up: second.up };
      expect(fetchedRemotePaths(second.result), context).toEqual([join(remoteDir, 'big.bin')]);
      await checkInvariants({
        ...invariants(scenario, remoteDir, originals, [first, second.result], `${context}, next pass`),
      });
      expect(await hashTree(remoteDir), `${context}: deleted remotely once safe`).toEqual(new Map());
    }
  });

  it(scenarioTitle('cut-retried'), async () => {
    const files = {
      'a.bin': randomBytes(400_000),
      'b.bin': randomBytes(2_000_000),
      'c.bin': randomBytes(300_000),
    };
    const { scenario, remoteDir, originals } = await setUp(
      'retried',
      {},
      { retries: 2 },
      { concurrency_limit: 1 },
    );
    // Oldest first: a, then b, then c.
    for (const [index, [name, content]] of Object.entries(files).entries())
      await makeRemoteTree(remoteDir, { [name]: content }, AN_HOUR_AGO_MS + index * 1000);
    for (const [relPath, sha256] of await hashTree(remoteDir)) originals.set(relPath, sha256);
    const base = await measured(() => server.fetch(scenario, ['--dry-run']));
    proxy.cutAfter({ direction: 'down', afterBytes: base.down + 400_000 + 1_000_000 });
    const cutsBefore = proxy.cuts;
    const run = await server.fetch(scenario);

    expect(proxy.cuts, 'the cut fired').toBeGreaterThan(cutsBefore);
    expect(run.code, run.stderr).toBe(0);
    const retries = run.logs.filter((line) => String(line.msg).startsWith('fetch failed, retrying'));
    expect(retries).toEqual([expect.objectContaining({ level: 40, remotePath: join(remoteDir, 'b.bin') })]);
    expect(fetchedRemotePaths(run)).toEqual(['a.bin', 'b.bin', 'c.bin'].map((name) => join(remoteDir, name)));
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'retried in the pass'));
  });

  it(scenarioTitle('corrupt-in-transit'), async () => {
    const { scenario, remoteDir, originals } = await setUp(
      'corrupt',
      { 'big.bin': randomBytes(3 * 1024 * 1024) },
      { after_fetch: 'delete' },
    );
    const base = await measured(() => server.fetch(scenario, ['--dry-run']));
    proxy.corruptAt({ direction: 'down', afterBytes: base.down + 1.5 * 1024 * 1024 });
    const first = await server.fetch(scenario);
    expect(first.code, first.stderr).toBe(1);
    expect(fetchedRemotePaths(first)).toEqual([]);
    const [line] = expectErrorLines(
      first.logs,
      { code: 'E_CONNECTION', host: hostLabel, path: join(remoteDir, 'big.bin') },
      'corrupted',
    );
    expect(String(line?.msg)).toContain('data arrived corrupted');
    await checkInvariants(
      invariants(scenario, remoteDir, originals, [first], 'after the corruption', 'none'),
    );

    const second = await server.fetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    await checkInvariants(invariants(scenario, remoteDir, originals, [first, second], 'next pass'));
    expect(await hashTree(remoteDir)).toEqual(new Map());
  });

  it(scenarioTitle('stall-connect'), async () => {
    const { scenario, remoteDir, originals } = await setUp(
      'stall',
      { 'a.csv': 'a' },
      { connect_timeout: '2s', retries: 1 },
    );
    proxy.stallNewConnections(true);
    let first: FetchRun;
    try {
      first = await server.fetch(scenario, [], { timeoutMs: 30_000 });
    } finally {
      proxy.stallNewConnections(false);
    }
    expect(first.code, first.stderr).toBe(1);
    // Two attempts of 2 s (+1 s backstop each) and a backoff of about a second: well under 10 s.
    expect(first.durationMs).toBeLessThan(10_000);
    expect(summaryOf(first, 'net').error).toMatch(/^E_TIMEOUT: .*connect_timeout/);
    expectErrorLines(first.logs, { code: 'E_TIMEOUT', host: hostLabel }, 'stalled connect');
    await checkInvariants(invariants(scenario, remoteDir, originals, [first], 'after the stall', 'none'));

    const second = await server.fetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    await checkInvariants(invariants(scenario, remoteDir, originals, [first, second], 'next pass'));
  });

  it(scenarioTitle('freeze-mid-file'), async () => {
    const { scenario, remoteDir, originals } = await setUp(
      'freeze',
      { 'slow.bin': randomBytes(8 * 1024 * 1024) },
      { ...SLOW_TRANSFER_KEYS, operation_timeout: '2s', keepalive_interval: '1s', after_fetch: 'delete' },
    );
    const child = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '1'], {
      env: server.env,
    });
    const done = collect(child, 30_000);
    let frozenAtMs = 0;
    try {
      await waitFor(
        'the download to start',
        async () => (await listTemporaries(scenario.incoming)).length > 0,
      );
      proxy.freeze(true);
      frozenAtMs = Date.now();
      const first = withLogs(await done);
      const stoppedMs = Date.now() - frozenAtMs;
      expect(first.code, first.stderr).toBe(1);
      // operation_timeout 2 s (keepalive would notice by 3 s too): no hang.
      expect(stoppedMs).toBeLessThan(15_000);
      expect(
        [...expectErrorLines(first.logs, { code: 'E_TIMEOUT', host: hostLabel }, 'frozen')].length,
      ).toBeGreaterThan(0);
      await checkInvariants(invariants(scenario, remoteDir, originals, [first], 'after the freeze', 'none'));
    } finally {
      proxy.freeze(false);
      child.kill('SIGKILL');
    }
    const second = await server.fetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    await checkInvariants(invariants(scenario, remoteDir, originals, [second], 'next pass'));
  });

  it(scenarioTitle('sshd-restart'), async () => {
    const files: Record<string, Buffer> = {};
    for (let index = 0; index < 12; index += 1)
      files[`f${String(index).padStart(2, '0')}.bin`] = randomBytes(300_000);
    // Straight to sshd: this fault is the server itself going away.
    const { scenario, remoteDir, originals } = await setUp(
      'restart',
      {},
      {
        port: server.sshd.port,
        ...SLOW_TRANSFER_KEYS,
        after_fetch: 'delete',
        connect_timeout: '2s',
      },
      { concurrency_limit: 1, interval: '2s' },
    );
    for (const [index, [name, content]] of Object.entries(files).entries())
      await makeRemoteTree(remoteDir, { [name]: content }, AN_HOUR_AGO_MS + index * 1000);
    for (const [relPath, sha256] of await hashTree(remoteDir)) originals.set(relPath, sha256);

    const child = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '3'], {
      env: server.env,
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const done = collect(child, 60_000);
    try {
      await waitFor('two files fetched', async () => (stderr.match(/"msg":"fetched /g) ?? []).length >= 2);
      await server.sshd.stopServer();
      await waitFor('pass 1 to end', async () => stderr.includes('"event":"pass-summary"'), 30_000);
      await checkInvariants(invariants(scenario, remoteDir, originals, [], 'sshd down', 'some'));
    } finally {
      await server.sshd.startServer();
    }
    const run = withLogs(await done);
    expect(run.code, run.stderr).toBe(0);
    expect(run.summaries.map((summary) => summary.result)).toEqual(['failed', 'ok', 'ok']);
    expect(run.summaries[0]?.error).toMatch(
      /^E_CONNECTION: .* — .*\(the remaining files wait for the next pass\)$/,
    );
    expect(fetchedRemotePaths(run)).toEqual(Object.keys(files).map((name) => join(remoteDir, name)));
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'after the restart'));
    expect(await hashTree(remoteDir)).toEqual(new Map());
  });
});
