/**
 * mirror-files end to end, local → local, through the compiled CLI: every change in
 * the source mirrored after one pass, backup_dir, links, compare: checksum, and the
 * safety rules — each refused with the replica byte-identical before and after.
 */
import {
  chmod,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines } from '../../support/run-cli.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';
import {
  anHourAgoMs,
  eventKeys,
  events,
  expectMirrored,
  makeLink,
  mirrorFiles,
  snapshot,
  writeConfig,
  writeTree,
} from './mirror-kit.js';

const execFileAsync = promisify(execFile);

describe('mirror-files local → local', () => {
  let temp: TempDir;
  let home: string;
  let counter = 0;

  beforeAll(async () => {
    temp = await makeTempDir('mirror-local-');
    home = join(temp.path, 'home');
    await mkdir(home, { recursive: true });
  });
  afterAll(async () => {
    await temp?.remove();
  });

  /** A fresh folder per test: src, rep, and a config whose state and logs live beside them. */
  async function workspace(jobLines: string[] = [], topLines: string[] = []) {
    counter += 1;
    const dir = join(temp.path, `w${counter}`);
    const src = join(dir, 'src');
    const rep = join(dir, 'rep');
    await mkdir(dir, { recursive: true });
    const config = await writeConfig(join(dir, 'mirror.yml'), [
      'state_dir: state',
      'log_dir: log',
      ...topLines,
      'jobs:',
      '  - name: main',
      '    source: src',
      '    replica: rep',
      ...jobLines.map((line) => `    ${line}`),
    ]);
    return {
      dir,
      src,
      rep,
      config,
      run: (...extra: string[]) => mirrorFiles(['--config', config, '--stop-on-loop', '1', ...extra], home),
    };
  }

  it('mirrors new, changed, removed and renamed files and empty folders, each after one pass', async () => {
    const w = await workspace();
    const old = anHourAgoMs();
    await writeTree(
      w.src,
      {
        'a.txt': 'alpha',
        'sub/b.txt': 'bravo',
        'sub/deep/c.txt': 'charlie',
        '.hidden': 'dotfile',
        'old/x.txt': 'x-ray',
        'keep.txt': 'keep me',
        'typechange/inner.txt': 'was a folder',
        'f1.txt': '1',
        'f2.txt': '2',
        'f3.txt': '3',
        empty: null,
      },
      old,
    );
    const first = await w.run();
    expect(first.code, first.stderr).toBe(0);
    await expectMirrored(w.src, w.rep);
    expect(eventKeys(first)).toEqual(
      [
        'created .hidden',
        'created a.txt',
        'created f1.txt',
        'created f2.txt',
        'created f3.txt',
        'created keep.txt',
        'created old/x.txt',
        'created sub/b.txt',
        'created sub/deep/c.txt',
        'created typechange/inner.txt',
        'folder_created .',
        'folder_created empty',
        'folder_created old',
        'folder_created sub',
        'folder_created sub/deep',
        'folder_created typechange',
      ].sort(),
    );

    // Same size, other bytes and mtime; longer; removed; renamed; a folder removed; a folder becomes a file.
    await writeFile(join(w.src, 'a.txt'), 'ALPHA');
    await writeFile(join(w.src, 'sub/b.txt'), 'bravo, longer now');
    await rm(join(w.src, 'sub/deep/c.txt'));
    await rename(join(w.src, 'keep.txt'), join(w.src, 'renamed.txt'));
    await rm(join(w.src, 'old'), { recursive: true });
    await rm(join(w.src, 'typechange'), { recursive: true });
    await writeFile(join(w.src, 'typechange'), 'now a file');
    await writeTree(w.src, { 'new/n.txt': 'november', 'newdir/empty2': null });

    const second = await w.run();
    expect(second.code, second.stderr).toBe(0);
    await expectMirrored(w.src, w.rep);
    expect(eventKeys(second)).toEqual(
      [
        'updated a.txt',
        'updated sub/b.txt',
        'removed sub/deep/c.txt',
        'created renamed.txt',
        'removed keep.txt',
        'removed old/x.txt',
        'folder_removed old',
        'removed typechange/inner.txt',
        'folder_removed typechange',
        'created typechange',
        'folder_created new',
        'created new/n.txt',
        'folder_created newdir',
        'folder_created newdir/empty2',
      ].sort(),
    );
    // Deletions go last: every removal is logged after every creation that did not need its name.
    const order = events(second).map((line) => line.event);
    const firstRemoval = order.findIndex((event) => event === 'removed');
    expect(order.slice(firstRemoval).filter((event) => event === 'updated')).toEqual([]);
    // Each event line names the job and the path, as structured fields.
    expect(events(second).find((line) => line.relPath === 'renamed.txt')).toMatchObject({
      event: 'created',
      job: 'main',
      sizeBytes: 7,
    });

    const third = await w.run();
    expect(third.code, third.stderr).toBe(0);
    expect(events(third)).toEqual([]);
    expect(jsonLines(third.stderr).find((line) => line.event === 'mirror_summary')).toMatchObject({
      unchanged: 15,
    });
  });

  it('an unchanged pass reads no file (atimes stay put) and rewrites nothing', async () => {
    const w = await workspace();
    const files: Record<string, string> = {};
    for (let index = 0; index < 50; index += 1) files[`d${index % 5}/f${index}.txt`] = `content ${index}`;
    await writeTree(w.src, files, anHourAgoMs());
    expect((await w.run()).code).toBe(0);
    const before = await snapshot(w.rep);
    // relatime updates an atime older than the mtime on the next read: set every atime far back
    // (touch -a leaves the mtime as it is, to the nanosecond).
    const longAgo = new Date('2020-01-01T00:00:00Z');
    // Metadata only: listing and stat never move an atime.
    const filesBelow = async (root: string) => {
      const all = await readdir(root, { recursive: true });
      const kinds = await Promise.all(
        all.map(async (rel) => ((await stat(join(root, rel))).isFile() ? rel : '')),
      );
      return kinds.filter(Boolean);
    };
    for (const root of [w.src, w.rep]) {
      const paths = (await filesBelow(root)).map((rel) => join(root, rel));
      await execFileAsync('touch', ['-a', '-d', longAgo.toISOString(), ...paths]);
    }
    // The check can fail: a read does move the atime on this file system.
    const control = join(w.dir, 'control.txt');
    await writeFile(control, 'x');
    await utimes(control, longAgo, new Date());
    await readFile(control);
    expect((await stat(control)).atimeMs).toBeGreaterThan(longAgo.getTime());

    const result = await w.run();
    expect(result.code, result.stderr).toBe(0);
    expect(events(result)).toEqual([]);
    for (const root of [w.src, w.rep]) {
      const checked = await filesBelow(root);
      expect(checked).toHaveLength(50);
      for (const rel of checked) expect((await stat(join(root, rel))).atimeMs, rel).toBe(longAgo.getTime());
    }
    // Nothing rewritten: same inodes, bytes and (to the millisecond) mtimes as after the first pass.
    const after = await snapshot(w.rep);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [rel, entry] of before) {
      const got = after.get(rel);
      expect([got?.ino, got?.sha256, got?.type], rel).toEqual([entry.ino, entry.sha256, entry.type]);
      expect(Math.abs((after.get(rel)?.mtimeMs ?? 0) - entry.mtimeMs)).toBeLessThan(1);
    }
  });

  it('backup_dir: removed and replaced files are moved below a per-pass timestamp instead of away', async () => {
    const w = await workspace(['backup_dir: backup']);
    await writeTree(
      w.src,
      { 'a.txt': 'one', 'b.txt': 'two', 'c/d.txt': 'three', 'e.txt': 'four' },
      anHourAgoMs(),
    );
    expect((await w.run()).code).toBe(0);
    await rm(join(w.src, 'b.txt'));
    await writeFile(join(w.src, 'a.txt'), 'one, changed');

    const result = await w.run();
    expect(result.code, result.stderr).toBe(0);
    await expectMirrored(w.src, w.rep);
    expect(eventKeys(result)).toEqual(['backed_up a.txt', 'backed_up b.txt', 'updated a.txt']);
    const [stamp, ...more] = await readdir(join(w.dir, 'backup'));
    expect(more).toEqual([]);
    expect(stamp).toMatch(/^\d{4}-\d\d-\d\dT\d{6}Z$/);
    expect(await readFile(join(w.dir, 'backup', stamp ?? '', 'a.txt'), 'utf8')).toBe('one');
    expect(await readFile(join(w.dir, 'backup', stamp ?? '', 'b.txt'), 'utf8')).toBe('two');
    const backedUp = events(result).find((line) => line.relPath === 'b.txt');
    expect(backedUp?.backupPath).toBe(join(w.dir, 'backup', stamp ?? '', 'b.txt'));
  });

  describe('safety rules: refused with a clear error, the replica untouched', () => {
    /** A replica that a wrong run could damage: ten files in two folders. */
    async function filled(jobLines: string[] = [], topLines: string[] = []) {
      const w = await workspace(jobLines, topLines);
      const files: Record<string, string> = {};
      for (let index = 0; index < 10; index += 1) files[`d${index % 2}/f${index}.txt`] = `file ${index}`;
      await writeTree(w.src, files, anHourAgoMs());
      const first = await w.run();
      expect(first.code, first.stderr).toBe(0);
      return { ...w, before: await snapshot(w.rep) };
    }

    it.each([
      [
        'the replica is inside the source',
        ['  - name: x', '    source: a', '    replica: a/inner'],
        /jobs\[1\]\.replica: .* is inside the source/,
      ],
      [
        'the source is inside the replica',
        ['  - name: x', '    source: a/inner', '    replica: a'],
        /jobs\[1\]\.replica: .* contains the source/,
      ],
      [
        "two jobs' replicas overlap",
        ['  - name: x', '    source: other', '    replica: rep/sub'],
        /jobs\[1\]\.replica: overlaps the replica of jobs\[0\]/,
      ],
      [
        "a replica is another job's source",
        ['  - name: x', '    source: other', '    replica: src'],
        /jobs\[1\]\.replica: overlaps the source of jobs\[0\]/,
      ],
    ])('config: %s (exit 2)', async (_name, extraJob, message) => {
      const w = await filled();
      const text = await readFile(w.config, 'utf8');
      await writeFile(w.config, `${text}${extraJob.join('\n')}\n`);
      const sourceBefore = await snapshot(w.src);
      const result = await w.run();
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(await snapshot(w.rep)).toEqual(w.before);
      expect(await snapshot(w.src)).toEqual(sourceBefore);
    });

    it('the replica reached through a link into the source (links resolved at run time)', async () => {
      const w = await filled();
      await mkdir(join(w.dir, 'src-twin'), { recursive: true });
      const inside = join(w.dir, 'inside-link');
      await symlink(join(w.src, 'd0'), inside);
      await writeConfig(w.config, [
        'state_dir: state',
        'log_dir: log',
        'jobs:',
        '  - name: main',
        '    source: src',
        '    replica: inside-link/replica',
      ]);
      const sourceBefore = await snapshot(w.src);
      const result = await w.run();
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/main: E_SAFETY: the replica .* is inside the source/);
      expect(await snapshot(w.src)).toEqual(sourceBefore);
    });

    it('a missing source', async () => {
      const w = await filled();
      await rename(w.src, join(w.dir, 'unmounted'));
      const result = await w.run();
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/main: E_SAFETY: the source .*src does not exist: nothing was changed/);
      expect(await snapshot(w.rep)).toEqual(w.before);
    });

    it('an empty source while the replica is not', async () => {
      const w = await filled(['max_delete: 100%']);
      await rm(w.src, { recursive: true });
      await mkdir(join(w.src, 'd0'), { recursive: true });
      const result = await w.run();
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /main: E_SAFETY: the source .* is empty while the replica holds 10 file\(s\)/,
      );
      expect(await snapshot(w.rep)).toEqual(w.before);
    });

    it('max_delete as a count: one more than allowed stops the pass and lists what it would remove', async () => {
      const w = await filled(['max_delete: 2']);
      await rm(join(w.src, 'd0/f0.txt'));
      await rm(join(w.src, 'd0/f2.txt'));
      await rm(join(w.src, 'd1/f1.txt'));
      await writeFile(join(w.src, 'new.txt'), 'a new file is not copied either');
      const result = await w.run();
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /would remove 3 of the replica's 10 file\(s\), more than max_delete \(2 = 2\): nothing was changed/,
      );
      const wouldRemove = jsonLines(result.stderr)
        .filter((line) => line.event === 'would_remove')
        .map((line) => line.relPath)
        .sort();
      expect(wouldRemove).toEqual(['d0/f0.txt', 'd0/f2.txt', 'd1/f1.txt']);
      expect(events(result)).toEqual([]);
      expect(await snapshot(w.rep)).toEqual(w.before);

      // At the limit, the same removals go through.
      await writeConfig(w.config, [
        'state_dir: state',
        'log_dir: log',
        'jobs:',
        '  - name: main',
        '    source: src',
        '    replica: rep',
        '    max_delete: 3',
      ]);
      const allowed = await w.run();
      expect(allowed.code, allowed.stderr).toBe(0);
      await expectMirrored(w.src, w.rep);
    });

    it('max_delete as a percentage: the default 50% refuses removing 6 of 10, "60%" allows it', async () => {
      const w = await filled();
      for (const index of [0, 1, 2, 3, 4, 5]) await rm(join(w.src, `d${index % 2}/f${index}.txt`));
      const refused = await w.run();
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /would remove 6 of the replica's 10 file\(s\), more than max_delete \(50% = 5\)/,
      );
      expect(await snapshot(w.rep)).toEqual(w.before);

      const text = await readFile(w.config, 'utf8');
      await writeFile(w.config, `${text}    max_delete: "60%"\n`);
      const allowed = await w.run();
      expect(allowed.code, allowed.stderr).toBe(0);
      await expectMirrored(w.src, w.rep);
    });
  });

  it('--dry-run prints what it would do and changes nothing, not even the ledger', async () => {
    const w = await workspace();
    await writeTree(w.src, { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' }, anHourAgoMs());
    expect((await w.run()).code).toBe(0);
    await writeFile(join(w.src, 'a.txt'), 'changed');
    await rm(join(w.src, 'b.txt'));
    await writeTree(w.src, { 'n/new.txt': 'new' });
    const before = await snapshot(w.rep);
    const ledgerBefore = (await snapshot(join(w.dir, 'state'))).get('mirror-files.sqlite');
    const result = await mirrorFiles(['--config', w.config, '--dry-run'], home);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split('\n').filter(Boolean).sort()).toEqual(
      [
        'main: would create folder n',
        'main: would create n/new.txt (3 bytes)',
        'main: would remove b.txt',
        'main: would update a.txt (7 bytes)',
      ].sort(),
    );
    expect(events(result)).toEqual([]);
    expect(await snapshot(w.rep)).toEqual(before);
    expect((await snapshot(join(w.dir, 'state'))).get('mirror-files.sqlite')?.sha256).toBe(
      ledgerBefore?.sha256,
    );
    const status = await mirrorFiles(['status', '--config', w.config, '--json'], home);
    expect(JSON.parse(status.stdout)).toMatchObject({ rows: [{ name: 'main', passes: 1 }] });
  });

  it('links: skip leaves them out, copy-as-link recreates those inside the source, follow copies their files', async () => {
    const w = await workspace(['links: copy-as-link']);
    await writeTree(w.src, { 'real/data.txt': 'data', 'other.txt': 'other' }, anHourAgoMs());
    await makeLink(join(w.src, 'to-data'), 'real/data.txt');
    await makeLink(join(w.src, 'real/up'), '../other.txt');
    await makeLink(join(w.src, 'escape'), '../../outside.txt');
    await makeLink(join(w.src, 'absolute'), '/etc/hostname');
    await writeFile(join(w.dir, 'outside.txt'), 'outside');

    const copied = await w.run();
    expect(copied.code, copied.stderr).toBe(0);
    const escaping = new Set(['escape', 'absolute']);
    await expectMirrored(w.src, w.rep, { ignore: (rel) => escaping.has(rel) });
    expect(eventKeys(copied).filter((key) => key.startsWith('copied'))).toEqual([
      'copied real/up',
      'copied to-data',
    ]);
    expect(copied.stderr).toMatch(/2 files — a symbolic link that points outside the source/);

    const followed = await workspace(['links: follow']);
    await writeTree(followed.src, { 'real/data.txt': 'data' }, anHourAgoMs());
    await makeLink(join(followed.src, 'to-data'), 'real/data.txt');
    await makeLink(join(followed.src, 'escape'), join(w.dir, 'outside.txt'));
    const result = await followed.run();
    expect(result.code, result.stderr).toBe(0);
    const rep = await snapshot(followed.rep);
    expect(rep.get('to-data')).toMatchObject({ type: 'file', sizeBytes: 4 });
    expect(rep.has('escape')).toBe(false);

    const skipped = await workspace();
    await writeTree(skipped.src, { 'real/data.txt': 'data' }, anHourAgoMs());
    await makeLink(join(skipped.src, 'to-data'), 'real/data.txt');
    const skip = await skipped.run();
    expect(skip.code, skip.stderr).toBe(0);
    expect((await snapshot(skipped.rep)).has('to-data')).toBe(false);
    expect(skip.stderr).toMatch(/1 file — a symbolic link \(links: skip\)/);
  });

  it('compare: checksum finds a change that keeps size and mtime; size_mtime does not read', async () => {
    const w = await workspace();
    const mtime = anHourAgoMs();
    await writeTree(w.src, { 'same.txt': 'aaaa', 'other.txt': 'x' }, mtime);
    expect((await w.run()).code).toBe(0);
    await writeTree(w.src, { 'same.txt': 'bbbb' }, mtime);
    const sizeMtime = await w.run();
    expect(sizeMtime.code).toBe(0);
    expect(events(sizeMtime)).toEqual([]);
    expect(await readFile(join(w.rep, 'same.txt'), 'utf8')).toBe('aaaa');

    await writeConfig(w.config, [
      'state_dir: state',
      'log_dir: log',
      'jobs:',
      '  - name: main',
      '    source: src',
      '    replica: rep',
      '    compare: checksum',
    ]);
    const checksum = await w.run();
    expect(checksum.code, checksum.stderr).toBe(0);
    expect(eventKeys(checksum)).toEqual(['updated same.txt']);
    await expectMirrored(w.src, w.rep);
  });

  it('preserve_mode, include/exclude (out-of-scope files stay) and delete: false', async () => {
    const w = await workspace([
      'preserve_mode: true',
      'include: ["*.csv"]',
      'exclude: ["skip"]',
      'max_delete: 100%',
    ]);
    await writeTree(
      w.src,
      { 'a.csv': 'a', 'b.txt': 'b', 'skip/c.csv': 'c', 'sub/d.csv': 'd' },
      anHourAgoMs(),
    );
    await chmod(join(w.src, 'a.csv'), 0o640);
    await writeTree(w.rep, {
      'mine.txt': 'not in scope, kept',
      'skip/theirs.csv': 'excluded folder, kept',
      'gone.csv': 'removed',
    });
    const result = await w.run();
    expect(result.code, result.stderr).toBe(0);
    const rep = await snapshot(w.rep);
    expect([...rep.keys()].sort()).toEqual([
      'a.csv',
      'mine.txt',
      'skip',
      'skip/theirs.csv',
      'sub',
      'sub/d.csv',
    ]);
    expect(rep.get('a.csv')?.mode).toBe(0o640);
    expect(eventKeys(result)).toContain('removed gone.csv');

    const keep = await workspace(['delete: false']);
    await writeTree(keep.src, { 'a.txt': 'a' }, anHourAgoMs());
    await writeTree(keep.rep, { 'extra.txt': 'stays', 'extra-dir/x.txt': 'stays' });
    const kept = await keep.run();
    expect(kept.code, kept.stderr).toBe(0);
    expect([...(await snapshot(keep.rep)).keys()].sort()).toEqual([
      'a.txt',
      'extra-dir',
      'extra-dir/x.txt',
      'extra.txt',
    ]);
  });

  it('status prints the last pass of each job; a second process on the same state_dir is refused', async () => {
    const w = await workspace([], ['interval: 1h']);
    await writeTree(w.src, { 'a.txt': 'a' }, anHourAgoMs());
    expect((await w.run()).code).toBe(0);
    const status = await mirrorFiles(['status', '--config', w.config, '--json'], home);
    expect(status.code, status.stderr).toBe(0);
    const { command, rows } = JSON.parse(status.stdout) as { command: string; rows: { name: string }[] };
    expect(command).toBe('mirror-files');
    expect(rows).toEqual([
      expect.objectContaining({ name: 'main', lastResult: 'ok', passes: 1, lastPassFiles: 2 }),
    ]);

    const { spawnCli, collect } = await import('../../support/run-cli.js');
    const looping = spawnCli('mirror-files', ['--config', w.config], { env: { HOME: home } });
    const done = collect(looping, 30_000);
    try {
      await waitFor(async () => (await readdir(join(w.dir, 'state'))).includes('mirror-files.lock'));
      const second = await w.run();
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(/E_LOCKED/);
    } finally {
      looping.kill('SIGTERM');
      await done;
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
