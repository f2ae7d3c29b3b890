/**
 * The fetcher killed with SIGKILL at many points of a 200-file pass (after_fetch:
 * delete, archive on), then rerun to completion. After every kill: no remote file is
 * gone unless incoming and archive hold it whole, and no file in incoming or archive
 * is half written under its real name. At the end: every file exactly once in
 * incoming and archive with its sha256, no temporary anywhere, and a pass that
 * fetches nothing.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AN_HOUR_AGO_MS,
  type FetcherScenario,
  type FetchRun,
  hashTree,
  listFiles,
  listTemporaries,
  makeRemoteTree,
  runFetch,
  summaryOf,
  withLogs,
  writeFetcherConfig,
} from '../../support/fetcher-scenario.js';
import { collect, spawnCli } from '../../support/run-cli.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const FILE_COUNT = 200;
const SEED = Number(process.env.FETCH_CRASH_SEED ?? 20_261_121);
/** Kills after some progress (mid-pass) … */
const PROGRESS_KILLS = 12;
/** … and at a random time from the start (connecting, recovering, cleaning, listing). */
const TIMED_KILLS = 3;

/** mulberry32: a small seeded generator, so a failing run can be replayed with FETCH_CRASH_SEED. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function between(random: () => number, min: number, max: number): number {
  return Math.floor(min + random() * (max - min + 1));
}

describe('fetch-files: SIGKILL at random points of a 200-file pass', () => {
  let sshd: SshdFixture;
  let temp: TempDir;

  beforeAll(async () => {
    sshd = await startSshd();
    temp = await makeTempDir('fetch-crash-');
  });
  afterAll(async () => {
    await sshd?.stop();
    await temp?.remove();
  });

  it('loses nothing, duplicates nothing, leaves no temporary', { timeout: 120_000 }, async () => {
    const random = seededRandom(SEED);
    const context = `FETCH_CRASH_SEED=${SEED}`;
    const remoteDir = join(sshd.rootDir, 'outbound');
    const originals = new Map<string, Buffer>();
    for (let index = 0; index < FILE_COUNT; index += 1) {
      const roll = random();
      const sizeBytes =
        roll < 0.4
          ? between(random, 0, 10_000)
          : roll < 0.8
            ? between(random, 10_000, 300_000)
            : between(random, 300_000, 1024 * 1024);
      originals.set(`d${index % 7}/f${String(index).padStart(3, '0')}.bin`, randomBytes(sizeBytes));
    }
    // Distinct mtimes, so "oldest first" spreads the folders through the pass.
    for (const [relPath, content] of originals) {
      await makeRemoteTree(
        remoteDir,
        { [relPath]: content },
        AN_HOUR_AGO_MS - Math.floor(random() * 600) * 1000,
      );
    }
    const expected = await hashTree(remoteDir);
    expect(expected.size).toBe(FILE_COUNT);
    const scenario = await writeFetcherConfig({
      sshd,
      dir: join(temp.path, 'local'),
      keys: { concurrency_limit: 8 },
      sources: [
        { name: 'crash', remoteDir, keys: { recursive: true, after_fetch: 'delete', connections: 4 } },
      ],
    });
    const incoming = join(scenario.incoming, 'crash');
    const archive = join(scenario.archive ?? '', 'crash');

    const killPlan = [
      ...Array.from({ length: PROGRESS_KILLS }, () => ({
        afterFetched: between(random, 1, 12),
        delayMs: between(random, 0, 40),
      })),
      ...Array.from({ length: TIMED_KILLS }, () => ({ afterFetched: 0, delayMs: between(random, 50, 700) })),
    ].sort(() => random() - 0.5);

    const kills: { afterFetched: number; delayMs: number; exitedBeforeKill: boolean }[] = [];
    const logs: Record<string, unknown>[] = [];
    for (const point of killPlan) {
      const { exitedBeforeKill, run } = await runAndKill(scenario, point.afterFetched, point.delayMs);
      kills.push({ ...point, exitedBeforeKill });
      logs.push(...run.logs);
      await checkNothingLost(
        expected,
        remoteDir,
        incoming,
        archive,
        `${context}, after kill ${kills.length}`,
      );
    }
    // The kills must have landed inside passes, not after them.
    expect(kills.filter((kill) => !kill.exitedBeforeKill).length, context).toBeGreaterThanOrEqual(10);
    const remoteLeftAfterKills = (await listFiles(remoteDir)).length;
    expect(remoteLeftAfterKills, `${context}: the kills left work to finish`).toBeGreaterThan(0);
    expect(remoteLeftAfterKills, `${context}: the kills did not stop all progress`).toBeLessThan(FILE_COUNT);

    // Rerun to completion.
    for (let attempt = 1; ; attempt += 1) {
      const run = await runFetch(scenario);
      logs.push(...run.logs);
      expect(run.code, `${context}\n${run.stderr}`).toBe(0);
      if ((await listFiles(remoteDir)).length === 0) break;
      expect(attempt, `${context}: still not done`).toBeLessThan(3);
    }

    // What the kills left for the next runs to clean up, told for the record; some must have hit transfers.
    const count = (prefix: string): number =>
      logs
        .filter((line) => String(line.msg).startsWith(prefix))
        .reduce((sum, line) => sum + (typeof line.count === 'number' ? line.count : 1), 0);
    const figures = {
      kills: kills.length,
      killedMidPass: kills.filter((kill) => !kill.exitedBeforeKill).length,
      temporariesRemoved: count('removed '),
      commitsFinished: count('finished a commit interrupted by a crash'),
      commitsConfirmed: count('confirmed a commit a crash interrupted'),
      fetchedLines: count('fetched '),
    };
    console.log(`crash test (${context}): ${JSON.stringify(figures)}`);
    expect(figures.temporariesRemoved, context).toBeGreaterThan(0);
    // Each file fetched at most a few times (only those cut by a kill again), never in a loop.
    expect(figures.fetchedLines, context).toBeLessThan(FILE_COUNT + kills.length * 8 + 1);

    expect(await hashTree(incoming), context).toEqual(expected);
    expect(await hashTree(archive), context).toEqual(expected);
    expect(await listFiles(scenario.incoming)).toHaveLength(FILE_COUNT);
    expect(await listFiles(scenario.archive ?? '')).toHaveLength(FILE_COUNT);
    expect(await listTemporaries(scenario.incoming, scenario.archive ?? ''), context).toEqual([]);
    const final = await runFetch(scenario);
    expect(final.code, final.stderr).toBe(0);
    expect(summaryOf(final, 'crash')).toMatchObject({ listed: 0, done: 0, failed: 0 });
    expect(await hashTree(incoming)).toEqual(expected);
  });
});

/**
 * Starts a pass, and SIGKILLs it `delayMs` after it has logged `afterFetched` more
 * fetched files (or `delayMs` after the start when `afterFetched` is 0). Resolves with
 * whether the process had already ended by itself.
 */
async function runAndKill(
  scenario: FetcherScenario,
  afterFetched: number,
  delayMs: number,
): Promise<{ exitedBeforeKill: boolean; run: FetchRun }> {
  const child = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '1']);
  const done = collect(child, 60_000);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  await new Promise<void>((resolve) => {
    const kill = (): void => {
      setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
        resolve();
      }, delayMs);
    };
    if (afterFetched === 0) return kill();
    let fetched = 0;
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      fetched += lines.filter((line) => line.includes('"msg":"fetched ')).length;
      if (fetched >= afterFetched) {
        child.stderr?.off('data', onData);
        kill();
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', () => resolve());
  });
  const result = withLogs(await done);
  const exitedBeforeKill = result.signal !== 'SIGKILL';
  // A run that ended by itself must have ended well.
  if (exitedBeforeKill) expect(result.code, result.stderr).toBe(0);
  return { exitedBeforeKill, run: result };
}

/**
 * The invariants that must hold at any instant: a remote file is gone only once
 * incoming and archive hold it whole; a name in incoming or archive (not a
 * temporary) never holds a partial file.
 */
async function checkNothingLost(
  expected: Map<string, string>,
  remoteDir: string,
  incoming: string,
  archive: string,
  context: string,
): Promise<void> {
  const remote = new Set(await listFiles(remoteDir));
  const inIncoming = await hashTree(incoming);
  const inArchive = await hashTree(archive);
  for (const [relPath, sha256] of expected) {
    if (!remote.has(relPath)) {
      expect(inIncoming.get(relPath), `${context}: ${relPath} deleted remotely, incoming copy`).toBe(sha256);
      expect(inArchive.get(relPath), `${context}: ${relPath} deleted remotely, archive copy`).toBe(sha256);
    }
  }
  for (const [what, tree] of [
    ['incoming', inIncoming],
    ['archive', inArchive],
  ] as const) {
    for (const [relPath, sha256] of tree) {
      const name = relPath.split('/').at(-1) ?? '';
      if (name.startsWith('.') && name.endsWith('.part')) continue;
      expect(sha256, `${context}: ${what}/${relPath} is whole`).toBe(expected.get(relPath));
    }
  }
}
