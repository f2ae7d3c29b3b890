/**
 * Which remote files the fetcher takes, end to end: the compiled CLI against a real
 * OpenSSH sshd. Globs, dotfiles, age, size, recursion, hostile names, links, --dry-run.
 */
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchedRemotePaths,
  hashTree,
  listFiles,
  listTemporaries,
  makeRemoteTree,
  pathExists,
  runFetch,
  sha256Of,
  summaryOf,
  writeFetcherConfig,
} from '../../support/fetcher-scenario.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

describe('fetch-files: selection', () => {
  let sshd: SshdFixture;
  let temp: TempDir;
  let counter = 0;
  /** A fresh remote folder (below the fixture's root) and a fresh local scenario folder. */
  const fresh = (label: string): { remoteDir: string; dir: string } => {
    counter += 1;
    return {
      remoteDir: join(sshd.rootDir, `${label}-${counter}`),
      dir: join(temp.path, `${label}-${counter}`),
    };
  };

  beforeAll(async () => {
    sshd = await startSshd();
    temp = await makeTempDir('fetch-selection-');
  });
  afterAll(async () => {
    await sshd?.stop();
    await temp?.remove();
  });

  it('include/exclude globs, **, the basename rule, dotfiles, dot-folders, sizes and recursion', async () => {
    const globs = fresh('globs');
    await makeRemoteTree(globs.remoteDir, {
      'a.csv': 'a',
      'sub/b.csv': 'b',
      'sub/deep/c.csv': 'c',
      'draft-1.csv': 'draft',
      'notes.txt': 'notes',
      'reports/r.txt': 'r',
      'other/reports/r.txt': 'other r',
      'top.zip': 'top',
      'z/1.zip': '1',
      'z/y/2.zip': '2',
      'old.tmp': 'tmp',
      '.git/config.csv': 'in a dot-folder',
    });
    const dots = fresh('dots');
    await makeRemoteTree(dots.remoteDir, {
      'plain.csv': 'plain',
      '.hidden.csv': 'hidden',
      '.cache/in-dot-folder.csv': 'cached',
      'sub/.secret.csv': 'secret',
      '.done/ok.csv': 'ok',
      'sub/.keep-me': 'kept',
    });
    const sizes = fresh('sizes');
    await makeRemoteTree(sizes.remoteDir, {
      '100B.bin': Buffer.alloc(100),
      '1KiB.bin': Buffer.alloc(1024),
      '2KiB.bin': Buffer.alloc(2048),
      '4KiB.bin': Buffer.alloc(4096),
      '5KiB.bin': Buffer.alloc(5120),
    });
    const flat = fresh('flat');
    await makeRemoteTree(flat.remoteDir, { 'top.csv': 'top', 'sub/below.csv': 'below' });

    const scenario = await writeFetcherConfig({
      sshd,
      dir: globs.dir,
      sources: [
        {
          name: 'globs',
          remoteDir: globs.remoteDir,
          keys: {
            recursive: true,
            include: ['*.csv', 'reports/*.txt', '**/*.zip'],
            exclude: ['draft-*', 'sub/deep/**'],
          },
        },
        {
          name: 'dots',
          remoteDir: dots.remoteDir,
          keys: { recursive: true, include: ['*.csv', '.done/*.csv', '**/.keep-*'] },
        },
        { name: 'sizes', remoteDir: sizes.remoteDir, keys: { min_size: '1KiB', max_size: '4KiB' } },
        { name: 'flat', remoteDir: flat.remoteDir },
      ],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(0);
    expect(await listFiles(join(scenario.incoming, 'globs'))).toEqual([
      'a.csv',
      'reports/r.txt',
      'sub/b.csv',
      'top.zip',
      'z/1.zip',
      'z/y/2.zip',
    ]);
    // Dot names only by a pattern that spells the dot (.cache/ is listed, since .done/ must be, but not taken).
    expect(await listFiles(join(scenario.incoming, 'dots'))).toEqual([
      '.done/ok.csv',
      'plain.csv',
      'sub/.keep-me',
    ]);
    expect(summaryOf(run, 'dots')).toMatchObject({ listed: 6, selected: 3, skipped: 3, done: 3 });
    // Without a dot pattern, dot-folders are not even entered.
    expect(summaryOf(run, 'globs')).toMatchObject({ listed: 11, selected: 6, skipped: 5, done: 6 });
    // Bounds are inclusive.
    expect(await listFiles(join(scenario.incoming, 'sizes'))).toEqual(['1KiB.bin', '2KiB.bin', '4KiB.bin']);
    expect(summaryOf(run, 'sizes')).toMatchObject({ listed: 5, selected: 3, skipped: 2 });
    // Not recursive: the folder below is not entered.
    expect(await listFiles(join(scenario.incoming, 'flat'))).toEqual(['top.csv']);
    // Incoming and archive hold the same bytes as the remote.
    const incoming = await hashTree(join(scenario.incoming, 'globs'));
    expect(incoming.get('z/y/2.zip')).toBe(sha256Of('2'));
    expect(await hashTree(join(scenario.archive ?? '', 'globs'))).toEqual(incoming);
  });

  it('min_age: a file modified too recently is left until it is old enough', async () => {
    const { remoteDir, dir } = fresh('age');
    await makeRemoteTree(remoteDir, { 'old.csv': 'old' });
    await makeRemoteTree(remoteDir, { 'fresh.csv': 'still being written' }, Date.now());
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'age', remoteDir, keys: { min_age: '10m' } }],
    });

    const first = await runFetch(scenario);
    expect(first.code, first.stderr).toBe(0);
    expect(fetchedRemotePaths(first)).toEqual([join(remoteDir, 'old.csv')]);
    expect(summaryOf(first, 'age')).toMatchObject({ listed: 2, selected: 1, skipped: 1, done: 1 });

    // Eleven minutes later (as far as its mtime says), it is taken.
    const elevenMinutesAgo = (Date.now() - 11 * 60_000) / 1000;
    await utimes(join(remoteDir, 'fresh.csv'), elevenMinutesAgo, elevenMinutesAgo);
    const second = await runFetch(scenario);
    expect(fetchedRemotePaths(second)).toEqual([join(remoteDir, 'fresh.csv')]);
    expect(await readFile(join(scenario.incoming, 'age', 'fresh.csv'), 'utf8')).toBe('still being written');
  });

  it('hostile names: control characters are refused with a warning; odd but legal names are fetched intact', async () => {
    const { remoteDir, dir } = fresh('names');
    const longAscii = `${'L'.repeat(251)}.csv`;
    const longUtf8 = `${'é'.repeat(125)}.csv`;
    const legal: Record<string, string> = {
      '..foo': 'dot dot foo',
      '...': 'three dots',
      '-rf.csv': 'leading dash',
      'back\\slash.csv': 'backslash',
      'co:lon.csv': 'colon',
      'sp ace.csv': 'space',
      [longAscii]: 'long ascii',
      [longUtf8]: 'long utf-8',
    };
    expect(Buffer.byteLength(longAscii)).toBe(255);
    expect(Buffer.byteLength(longUtf8)).toBe(254);
    const refused = { 'new\nline.csv': 'newline', 'tab\there.csv': 'tab', 'cr\r.csv': 'carriage return' };
    await makeRemoteTree(remoteDir, { ...legal, ...refused });
    // Latin-1 bytes: not valid UTF-8, so no name we could ask the server for.
    await writeFile(
      Buffer.concat([Buffer.from(`${remoteDir}/caf`), Buffer.from([0xe9]), Buffer.from('.csv')]),
      'latin1',
    );
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'names', remoteDir, keys: { include: ['*', '.*'] } }],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(0);
    const expected = new Map(Object.entries(legal).map(([name, content]) => [name, sha256Of(content)]));
    expect(await hashTree(join(scenario.incoming, 'names'))).toEqual(expected);
    expect(await hashTree(join(scenario.archive ?? '', 'names'))).toEqual(expected);
    const warning = run.logs.find((line) => String(line.reason).startsWith('unsafe-name'));
    expect(warning).toMatchObject({ level: 40, name: 'names', count: 3 });
    expect([...(warning?.examples as string[])].sort()).toEqual(Object.keys(refused).sort());
    const undecodable = run.logs.find((line) => String(line.reason).includes('not valid UTF-8'));
    expect(undecodable).toMatchObject({ level: 40, name: 'names', count: 1, examples: ['caf\uFFFD.csv'] });
    // Refused names are skips, not failures: a file that can never be fetched must not fail every pass.
    expect(summaryOf(run, 'names')).toMatchObject({ result: 'ok', done: 8, skipped: 4, failed: 0 });
  });

  it('a link to /etc/passwd is never fetched, with or without follow_links; a link inside is, when asked', async () => {
    const { remoteDir, dir } = fresh('links');
    await makeRemoteTree(remoteDir, { 'real.csv': 'real' });
    const { symlink } = await import('node:fs/promises');
    await symlink('/etc/passwd', join(remoteDir, 'passwd'));
    await symlink('../../../../../../../../etc/passwd', join(remoteDir, 'relative-passwd'));
    await symlink('real.csv', join(remoteDir, 'alias.csv'));
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [
        { name: 'plain', remoteDir },
        { name: 'follow', remoteDir, keys: { follow_links: true } },
      ],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(0);
    expect(await listFiles(join(scenario.incoming, 'plain'))).toEqual(['real.csv']);
    expect(await hashTree(join(scenario.incoming, 'follow'))).toEqual(
      new Map([
        ['alias.csv', sha256Of('real')],
        ['real.csv', sha256Of('real')],
      ]),
    );
    const passwd = await readFile('/etc/passwd');
    for (const [, sha256] of await hashTree(scenario.incoming)) expect(sha256).not.toBe(sha256Of(passwd));
    const warnings = run.logs.filter((line) => line.level === 40 && typeof line.reason === 'string');
    expect(warnings.map((line) => [line.name, line.reason, [...(line.examples as string[])].sort()])).toEqual(
      expect.arrayContaining([
        [
          'plain',
          'link-not-followed: a link (set follow_links: true to fetch its target)',
          ['alias.csv', 'passwd', 'relative-passwd'],
        ],
        ['follow', 'link-skipped: points outside remote_dir', ['passwd', 'relative-passwd']],
      ]),
    );
    // A skip is not a failure.
    expect(summaryOf(run, 'plain')).toMatchObject({ result: 'ok', skipped: 3, failed: 0 });
    expect(summaryOf(run, 'follow')).toMatchObject({ result: 'ok', skipped: 2, failed: 0, done: 2 });
  });

  it('--dry-run prints the plan and changes nothing: no incoming, archive or ledger; the remote untouched', async () => {
    const { remoteDir, dir } = fresh('dry');
    await makeRemoteTree(remoteDir, { 'one.csv': 'one', 'sub/two.csv': 'two', 'skip.txt': 'no' });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [
        { name: 'dry', remoteDir, keys: { recursive: true, include: ['*.csv'], after_fetch: 'delete' } },
      ],
    });
    const remoteBefore = await hashTree(remoteDir);
    const mtimeBefore = (await stat(join(remoteDir, 'one.csv'))).mtimeMs;

    const run = await runFetch(scenario, ['--dry-run']);

    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toEqual([
      `would fetch dry:${join(remoteDir, 'one.csv')} (3 B) → ${join(scenario.incoming, 'dry', 'one.csv')}, then delete on the server`,
      `would fetch dry:${join(remoteDir, 'sub/two.csv')} (3 B) → ${join(scenario.incoming, 'dry', 'sub/two.csv')}, then delete on the server`,
    ]);
    expect(summaryOf(run, 'dry')).toMatchObject({ done: 0, waiting: 2, selected: 2 });
    for (const path of [scenario.incoming, scenario.archive ?? '', scenario.stateDir])
      expect(await pathExists(path), path).toBe(false);
    expect(await hashTree(remoteDir)).toEqual(remoteBefore);
    expect((await stat(join(remoteDir, 'one.csv'))).mtimeMs).toBe(mtimeBefore);

    // Nothing was recorded: a real run fetches both.
    const real = await runFetch(scenario);
    expect(fetchedRemotePaths(real)).toEqual([join(remoteDir, 'one.csv'), join(remoteDir, 'sub/two.csv')]);
  });

  it('verify: sidecar fetches a file only against its .sha256; a mismatch fails it, a missing one makes it wait', async () => {
    const { remoteDir, dir } = fresh('sidecar');
    await makeRemoteTree(remoteDir, {
      'good.csv': 'good',
      'good.csv.sha256': `${sha256Of('good')}  good.csv\n`,
      'upper.csv': 'upper',
      'upper.csv.sha256': sha256Of('upper').toUpperCase(),
      'damaged.csv': 'damaged in transit',
      'damaged.csv.sha256': `${sha256Of('what the partner meant')}  damaged.csv\n`,
      'pending.csv': 'sidecar not there yet',
    });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'sc', remoteDir, keys: { verify: 'sidecar', after_fetch: 'delete' } }],
    });

    const first = await runFetch(scenario);

    expect(first.code, first.stderr).toBe(1);
    expect(fetchedRemotePaths(first)).toEqual([join(remoteDir, 'good.csv'), join(remoteDir, 'upper.csv')]);
    expect(await listFiles(join(scenario.incoming, 'sc'))).toEqual(['good.csv', 'upper.csv']);
    expect(summaryOf(first, 'sc')).toMatchObject({ done: 2, failed: 1, waiting: 1 });
    const failure = first.logs.find((line) => line.remotePath === join(remoteDir, 'damaged.csv'));
    expect(failure).toMatchObject({ level: 50, source: 'sc', err: { code: 'E_VERIFY' } });
    expect(await listTemporaries(scenario.incoming, scenario.archive ?? '')).toEqual([]);
    // Only what was fetched is deleted, and its sidecar with it.
    expect(await listFiles(remoteDir)).toEqual(['damaged.csv', 'damaged.csv.sha256', 'pending.csv']);

    await makeRemoteTree(remoteDir, {
      'damaged.csv.sha256': sha256Of('damaged in transit'),
      'pending.csv.sha256': sha256Of('sidecar not there yet'),
    });
    const second = await runFetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    expect(fetchedRemotePaths(second)).toEqual([
      join(remoteDir, 'damaged.csv'),
      join(remoteDir, 'pending.csv'),
    ]);
    expect(await listFiles(remoteDir)).toEqual([]);
  });
});
