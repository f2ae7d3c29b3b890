/**
 * Crash test: 200 files, three local destinations and one SFTP destination with
 * different filters and policies (one already holding other files under some of our
 * names, so `rename` puts ours beside them), the copier SIGKILLed at seeded random points of
 * its pass again and again, then run to the end. After every kill: no file left
 * incoming before every matching destination held a complete copy, and no
 * destination shows a half-written file under a real name. At the end: every file in
 * every destination exactly once, right sha256, no temporaries, incoming empty.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  outputOf,
  findTemporaries,
  hashTree,
  seededBytes,
  seededRandom,
  sftpDestination,
  sha256Of,
  writeFileWithMtime,
} from '../../support/copier-scenario.js';
import { numberedName } from '../../../src/actions/numbered-name.js';
import { collect } from '../../support/run-cli.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';

const SEED = Number(process.env.CRASH_SEED ?? 20261121);
const FILE_COUNT = 200;
const MIN_KILLS = 12;
const EXTENSIONS = ['csv', 'bin', 'txt', 'json'];

interface DestinationSpec {
  name: string;
  wants: (relPath: string) => boolean;
  config: (scenario: CopierScenario, sshd: SshdFixture) => Record<string, unknown>;
  dir: (scenario: CopierScenario, sshd: SshdFixture) => string;
}

const DESTINATIONS: DestinationSpec[] = [
  {
    // Every file; rename would show a second copy as "name (1).ext"; copies get a fresh mtime.
    name: 'all',
    wants: () => true,
    config: (scenario) => ({
      name: 'all',
      path: scenario.path('out', 'all'),
      on_conflict: 'rename',
      preserve_mtime: false,
    }),
    dir: (scenario) => scenario.path('out', 'all'),
  },
  {
    name: 'text',
    wants: (relPath) => relPath.endsWith('.csv') || relPath.endsWith('.txt'),
    config: (scenario) => ({
      name: 'text',
      path: scenario.path('out', 'text'),
      include: ['*.csv', '*.txt'],
      on_conflict: 'fail',
      verify: 'sha256',
    }),
    dir: (scenario) => scenario.path('out', 'text'),
  },
  {
    name: 'linked',
    wants: (relPath) => relPath.endsWith('.bin') || relPath.startsWith('d1/'),
    config: (scenario) => ({
      name: 'linked',
      path: scenario.path('out', 'linked'),
      include: ['*.bin', 'd1/**'],
      link: 'hardlink',
    }),
    dir: (scenario) => scenario.path('out', 'linked'),
  },
  {
    name: 'remote',
    wants: (relPath) => relPath.startsWith('d2/'),
    config: (_scenario, sshd) =>
      sftpDestination(sshd, 'remote', join(sshd.rootDir, 'crash'), {
        include: ['d2/**'],
        on_conflict: 'rename',
      }),
    dir: (_scenario, sshd) => join(sshd.rootDir, 'crash'),
  },
];

describe('copy-files killed again and again mid-pass', () => {
  let sshd: SshdFixture;
  let scenario: CopierScenario;
  const originals = new Map<string, string>();
  /** Files a third party already put in the `all` destination under our names: ours go beside them. */
  const theirs = new Map<string, string>();

  /** Where a file of ours lands in a destination. */
  const oursAt = (destination: DestinationSpec, relPath: string): string =>
    destination.name === 'all' && theirs.has(relPath) ? numberedName(relPath, 1) : relPath;

  /** Everything a destination must hold at the end, relPath → sha256. */
  function expectedTree(destination: DestinationSpec): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [relPath, sha256] of originals) {
      if (destination.wants(relPath)) out[oursAt(destination, relPath)] = sha256;
    }
    if (destination.name === 'all') for (const [relPath, sha256] of theirs) out[relPath] = sha256;
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  beforeAll(async () => {
    sshd = await startSshd();
    scenario = await CopierScenario.create('copier-crash-');
    const random = seededRandom(SEED);
    for (let i = 0; i < FILE_COUNT; i += 1) {
      // Mostly small files, a few up to 1 MiB.
      const sizeBytes = Math.floor(random() ** 3 * 1024 * 1024);
      const relPath = `d${i % 5}/f-${String(i).padStart(3, '0')}.${EXTENSIONS[i % EXTENSIONS.length]}`;
      const content = seededBytes(SEED + i, sizeBytes);
      await scenario.addFile(relPath, content);
      originals.set(relPath, sha256Of(content));
      if (i % 20 === 7) {
        // Same size as ours every other time, so only the bytes tell them apart.
        const other = seededBytes(SEED - i, i % 40 === 7 ? sizeBytes : sizeBytes + 1);
        await writeFileWithMtime(scenario.path('out', 'all', relPath), other, Date.now() - 7_200_000);
        theirs.set(relPath, sha256Of(other));
      }
    }
    await scenario.writeConfig({
      concurrency_limit: 8,
      destinations: DESTINATIONS.map((destination) => destination.config(scenario, sshd)),
    });
  });
  afterAll(async () => {
    await scenario?.remove();
    await sshd?.stop();
  });

  /** The invariants that must hold at any moment, even right after a SIGKILL. */
  async function checkInvariants(when: string): Promise<void> {
    const incoming = await hashTree(scenario.incoming);
    const trees = new Map<string, Record<string, string>>();
    for (const destination of DESTINATIONS) {
      const tree = await hashTree(destination.dir(scenario, sshd));
      trees.set(destination.name, tree);
      const expected = expectedTree(destination);
      // Nothing half-written under a real name, and nothing a destination should not get.
      for (const [relPath, sha256] of Object.entries(tree)) {
        if (relPath.split('/').pop()?.endsWith('.part')) continue;
        expect(expected[relPath], `${when}: ${destination.name} holds ${relPath}`).toBe(sha256);
      }
    }
    for (const [relPath, sha256] of originals) {
      if (incoming[relPath] !== undefined) {
        expect(incoming[relPath], `${when}: incoming/${relPath} intact`).toBe(sha256);
        continue;
      }
      // Gone from incoming: every destination that wants it holds a complete, correct copy.
      for (const destination of DESTINATIONS.filter((item) => item.wants(relPath))) {
        expect(
          trees.get(destination.name)?.[oursAt(destination, relPath)],
          `${when}: ${relPath} left incoming before ${destination.name} held it`,
        ).toBe(sha256);
      }
    }
  }

  it(`survives ${MIN_KILLS} SIGKILLs at random points and ends with every file delivered exactly once`, async () => {
    const random = seededRandom(SEED ^ 0x5eed);
    const startedMs = Date.now();
    let kills = 0;
    let runs = 0;
    while (kills < MIN_KILLS) {
      runs += 1;
      expect(runs, 'the copier finished before enough kills: make the pass longer').toBeLessThan(
        MIN_KILLS * 3,
      );
      const child = scenario.spawn(['--stop-on-loop', '1']);
      // Kill after a random number of deliveries (plus a random few ms), so kills land on
      // every step: copying, renaming, recording, releasing, cleaning up.
      const killAfterLines = Math.floor(random() * 30);
      const jitterMs = Math.floor(random() * 25);
      let lines = 0;
      let armed = false;
      const arm = (): void => {
        if (armed) return;
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), jitterMs);
      };
      child.stderr?.on('data', (chunk: Buffer) => {
        lines += chunk.toString().split('"outcome":').length - 1;
        if (lines >= killAfterLines) arm();
      });
      if (killAfterLines === 0) arm();
      const result = await collect(child, 30_000);
      if (result.signal === 'SIGKILL') kills += 1;
      else expect(result.code, outputOf(result)).toBe(0);
      await checkInvariants(`after run ${runs} (${result.signal ?? `exit ${result.code}`})`);
    }

    // Run to the end: at most a few passes.
    let final = await scenario.run(['--stop-on-loop', '1']);
    expect(final.code, outputOf(final)).toBe(0);
    if (Object.keys(await hashTree(scenario.incoming)).length > 0)
      final = await scenario.run(['--stop-on-loop', '1']);
    expect(final.code, outputOf(final)).toBe(0);
    await checkInvariants('at the end');

    expect(await hashTree(scenario.incoming)).toEqual({});
    for (const destination of DESTINATIONS) {
      expect(await hashTree(destination.dir(scenario, sshd)), destination.name).toEqual(
        expectedTree(destination),
      );
    }
    expect(
      await findTemporaries(scenario.incoming, scenario.path('out'), join(sshd.rootDir, 'crash')),
    ).toEqual([]);
    console.log(`crash test: ${kills} kills in ${runs} runs, ${Date.now() - startedMs} ms, seed ${SEED}`);
  });
});
