/**
 * The inline form, `mirror-files SOURCE REPLICA [flags]`, through the compiled CLI:
 * one pass with --once and --log FILE, a bounded loop on --interval that picks up a
 * change, a one-second cron --schedule, and usage mistakes refused in one line.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, jsonLines, spawnCli } from '../../support/run-cli.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';
import {
  anHourAgoMs,
  eventKeys,
  eventsIn,
  expectMirrored,
  mirrorFiles,
  snapshot,
  writeTree,
} from './mirror-kit.js';

describe('mirror-files SOURCE REPLICA (inline form)', () => {
  let temp: TempDir;
  let home: string;
  let counter = 0;

  beforeAll(async () => {
    temp = await makeTempDir('mirror-inline-');
    home = join(temp.path, 'home');
    await mkdir(home, { recursive: true });
  });
  afterAll(async () => {
    await temp?.remove();
  });

  async function workspace() {
    counter += 1;
    const dir = join(temp.path, `w${counter}`);
    await mkdir(dir, { recursive: true });
    return { dir, src: join(dir, 'src'), rep: join(dir, 'rep'), logFile: join(dir, 'events.log') };
  }

  it('--once: one pass, relative paths from the working directory, every event in --log FILE', async () => {
    const w = await workspace();
    await writeTree(w.src, { 'a.txt': 'a', 'sub/b.txt': 'b', empty: null }, anHourAgoMs());
    const result = await mirrorFiles(['src', 'rep', '--once', '--log', 'events.log'], home, { cwd: w.dir });
    expect(result.code, result.stderr).toBe(0);
    await expectMirrored(w.src, w.rep);
    const logged = eventsIn(await readFile(w.logFile, 'utf8'))
      .map((line) => `${line.event} ${line.relPath} ${line.job}`)
      .sort();
    expect(logged).toEqual(
      [
        'created a.txt rep',
        'created sub/b.txt rep',
        'folder_created . rep',
        'folder_created empty rep',
        'folder_created sub rep',
      ].sort(),
    );
    expect(eventKeys(result)).toHaveLength(5);
    // State and logs of an inline job live below ~/.local/state, one folder per pair of ends.
    const stateRoot = join(home, '.local', 'state', 'files-sync-link', 'mirror');
    const [stateDir, ...others] = Object.keys(Object.fromEntries(await snapshot(stateRoot))).filter(
      (rel) => !rel.includes('/'),
    );
    expect(others).toEqual([]);
    expect(stateDir).toMatch(/^rep-[0-9a-f]{8}$/);
    const info = await readFile(join(stateRoot, stateDir ?? '', 'log', 'all-info.log'), 'utf8');
    expect(eventsIn(info)).toHaveLength(5);

    const again = await mirrorFiles(['src', 'rep', '--once', '--log', 'events.log'], home, { cwd: w.dir });
    expect(again.code, again.stderr).toBe(0);
    expect(eventKeys(again)).toEqual([]);
    // --log appends: the second pass's summary joins the first's.
    const summaries = jsonLines(await readFile(w.logFile, 'utf8')).filter(
      (line) => line.event === 'pass-summary',
    );
    expect(summaries).toHaveLength(2);
  });

  it('--interval 1s loops: a change made between passes is mirrored by the next pass', async () => {
    const w = await workspace();
    await writeTree(w.src, { 'a.txt': 'a' }, anHourAgoMs());
    const child = spawnCli(
      'mirror-files',
      [w.src, w.rep, '--interval', '1s', '--stop-on-loop', '3', '--log', w.logFile],
      {
        env: { HOME: home, XDG_STATE_HOME: '' },
      },
    );
    const done = collect(child, 30_000);
    const summaries = async () =>
      jsonLines(await readFile(w.logFile, 'utf8').catch(() => '')).filter(
        (line) => line.event === 'pass-summary',
      );
    await waitFor(async () => (await summaries()).length >= 1);
    await writeTree(w.src, { 'added/later.txt': 'added while looping' });
    const result = await done;
    expect(result.code, result.stderr).toBe(0);
    const passes = await summaries();
    expect(passes.map((line) => line.passNumber)).toEqual([1, 2, 3]);
    // Interval from the end of one pass to the start of the next: at least a second apart.
    const times = passes.map((line) => Date.parse(String(line.time)));
    expect((times[2] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(2_000);
    await expectMirrored(w.src, w.rep);
    expect(
      eventsIn(await readFile(w.logFile, 'utf8')).map((line) => `${line.event} ${line.relPath}`),
    ).toContain('created added/later.txt');
  });

  it('--schedule with a one-second cron expression starts each pass on a whole second', async () => {
    const w = await workspace();
    await writeTree(w.src, { 'a.txt': 'a' }, anHourAgoMs());
    const result = await mirrorFiles(
      [w.src, w.rep, '--schedule', '* * * * * *', '--time-zone', 'UTC', '--stop-on-loop', '2', '-v'],
      home,
    );
    expect(result.code, result.stderr).toBe(0);
    await expectMirrored(w.src, w.rep);
    const lines = jsonLines(result.stderr);
    const dueTimes = lines
      .filter((line) => line.msg === 'waiting for the scheduled pass')
      .map((line) => String(line.nextRunAt));
    expect(dueTimes).toHaveLength(2);
    for (const due of dueTimes) expect(due).toMatch(/:\d\d\.000Z$/);
    const starts = lines
      .filter((line) => /^pass \d starts$/.test(String(line.msg)))
      .map((line) => Date.parse(String(line.time)));
    expect(starts).toHaveLength(2);
    starts.forEach((start, index) => expect(start).toBeGreaterThanOrEqual(Date.parse(dueTimes[index] ?? '')));
    expect(lines.filter((line) => line.event === 'pass-summary')).toHaveLength(2);
  });

  it('--dry-run with inline flags changes nothing; --max-delete and --backup-dir reach the job', async () => {
    const w = await workspace();
    await writeTree(w.src, { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' }, anHourAgoMs());
    expect((await mirrorFiles([w.src, w.rep, '--once'], home)).code).toBe(0);
    await writeFile(join(w.src, 'a.txt'), 'changed');
    const { rm } = await import('node:fs/promises');
    await rm(join(w.src, 'b.txt'));
    await rm(join(w.src, 'c.txt'));
    const before = await snapshot(w.rep);
    const dry = await mirrorFiles(
      [w.src, w.rep, '--dry-run', '--max-delete', '2', '--backup-dir', join(w.dir, 'bk')],
      home,
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`rep: would move to ${join(w.dir, 'bk')}: b.txt`);
    expect(await snapshot(w.rep)).toEqual(before);

    const refused = await mirrorFiles([w.src, w.rep, '--once', '--max-delete', '1'], home);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/more than max_delete \(1 = 1\)/);
    expect(await snapshot(w.rep)).toEqual(before);
  });

  it.each([
    [['SRC', 'REP', '--frobnicate'], /^mirror-files: E_USAGE: Unknown option '--frobnicate'/],
    [['--frobnicate'], /^mirror-files: E_USAGE: Unknown option '--frobnicate'/],
    [
      ['SRC', 'REP', '--interval', '1m', '--schedule', '* * * * *'],
      /give --interval or --schedule, not both/,
    ],
    [['SRC'], /expected SOURCE and REPLICA/],
    [['SRC', 'REP', 'THIRD'], /unexpected argument 'THIRD'/],
  ])('usage mistake %j: one line, exit 2', async (args, message) => {
    const w = await workspace();
    const result = await mirrorFiles(args, home, { cwd: w.dir });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });

  it('bad values are checked by the config rules and named by their flags (exit 2, nothing created)', async () => {
    const w = await workspace();
    await writeTree(w.src, { 'a.txt': 'a' });
    const result = await mirrorFiles(
      ['src', 'src/inner', '--once', '--max-delete', 'lots', '--interval', '60', '--compare', 'sha1'],
      home,
      { cwd: w.dir },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('mirror-files: (command line): 4 problems in the configuration');
    expect(result.stderr).toMatch(
      /\(command line\): --max-delete: expected a count such as 100 or a percentage/,
    );
    expect(result.stderr).toMatch(
      /\(command line\): --interval: expected a duration .* \(add a unit, as in 60s\)/,
    );
    expect(result.stderr).toMatch(
      /\(command line\): --compare: expected one of size_mtime, checksum, got "sha1"/,
    );
    expect(result.stderr).toMatch(/\(command line\): REPLICA: .*src\/inner is inside the source/);
    expect(await snapshot(join(w.src, 'inner'))).toEqual(new Map());
  });

  it('--help shows both forms and the default interval', async () => {
    const result = await mirrorFiles(['--help'], home);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('mirror-files SOURCE REPLICA');
    expect(result.stdout).toContain('--config FILE');
    expect(result.stdout).toMatch(/default 5m when neither --interval nor --schedule/);
    const version = await mirrorFiles(['--version'], home);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^mirror-files \S+\n$/);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
