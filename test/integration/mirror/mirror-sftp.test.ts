/**
 * mirror-files with an SFTP end, against a real OpenSSH sshd: SFTP → local and
 * local → SFTP (config and inline forms), each create/change/delete/rename mirrored
 * after one pass, backup_dir on the server, and an unreachable source refused with
 * the replica untouched.
 */
import { copyFile, mkdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSshdOrSkip, type SshdFixture, startSshd } from '../../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';
import {
  anHourAgoMs,
  eventKeys,
  events,
  expectMirrored,
  mirrorFiles,
  snapshot,
  writeConfig,
  writeTree,
} from './mirror-kit.js';

const HAVE_SSHD = requireSshdOrSkip();

describe.skipIf(!HAVE_SSHD)('mirror-files with SFTP (real sshd)', () => {
  let sshd: SshdFixture;
  let temp: TempDir;
  let home: string;
  let counter = 0;

  beforeAll(async () => {
    sshd = await startSshd();
    temp = await makeTempDir('mirror-sftp-');
    home = join(temp.path, 'home');
    await mkdir(home, { recursive: true });
  });
  afterAll(async () => {
    await sshd?.stop();
    await temp?.remove();
  });

  /** Login keys of the fixture, as job or end keys. */
  function loginLines(indent: string): string[] {
    return [`${indent}private_key: ${sshd.clientKeyPath}`, `${indent}known_hosts: ${sshd.knownHostsPath}`];
  }

  async function workspace() {
    counter += 1;
    const dir = join(temp.path, `w${counter}`);
    const remote = join(sshd.rootDir, `w${counter}`);
    await mkdir(dir, { recursive: true });
    await mkdir(remote, { recursive: true });
    return { dir, remote };
  }

  /** A source tree with settled mtimes (whole seconds, an hour ago): SFTP v3 carries seconds. */
  async function fillSource(root: string): Promise<number> {
    const mtime = anHourAgoMs();
    await writeTree(
      root,
      {
        'a.txt': 'alpha',
        'sub/b.txt': 'bravo',
        'sub/deep/c.txt': 'charlie',
        '.hidden': 'dot',
        'old/x.txt': 'x-ray',
        'keep.txt': 'keep',
        'f1.txt': '1',
        'f2.txt': '2',
        empty: null,
      },
      mtime,
    );
    return mtime;
  }

  /** The same kinds of change as the local test: content (same size), growth, removal, rename, folders. */
  async function changeSource(root: string, mtime: number): Promise<void> {
    const later = (mtime + 10_000) / 1000;
    await writeFile(join(root, 'a.txt'), 'ALPHA');
    await utimes(join(root, 'a.txt'), later, later);
    await writeFile(join(root, 'sub/b.txt'), 'bravo, longer now');
    await rm(join(root, 'sub/deep/c.txt'));
    await rename(join(root, 'keep.txt'), join(root, 'renamed.txt'));
    await rm(join(root, 'old'), { recursive: true });
    await writeTree(root, { 'new/n.txt': 'november', 'newdir/empty2': null }, mtime);
  }

  const CHANGE_EVENTS = [
    'updated a.txt',
    'updated sub/b.txt',
    'removed sub/deep/c.txt',
    'created renamed.txt',
    'removed keep.txt',
    'removed old/x.txt',
    'folder_removed old',
    'folder_created new',
    'created new/n.txt',
    'folder_created newdir',
    'folder_created newdir/empty2',
  ].sort();

  it('SFTP → local: every change in the remote source is mirrored after one pass', async () => {
    const w = await workspace();
    const src = join(w.remote, 'src');
    const rep = join(w.dir, 'rep');
    const mtime = await fillSource(src);
    const config = await writeConfig(join(w.dir, 'mirror.yml'), [
      'state_dir: state',
      'log_dir: log',
      'jobs:',
      '  - name: pull',
      '    source:',
      `      host: ${sshd.host}`,
      `      port: ${sshd.port}`,
      `      username: ${sshd.username}`,
      `      path: ${src}`,
      ...loginLines('      '),
      '    replica: rep',
    ]);
    const run = () => mirrorFiles(['--config', config, '--stop-on-loop', '1'], home);
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    await expectMirrored(src, rep, { mtimeResolution: 's' });
    expect(eventKeys(first).filter((key) => key.startsWith('created'))).toHaveLength(8);

    await changeSource(src, mtime);
    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    await expectMirrored(src, rep, { mtimeResolution: 's' });
    expect(eventKeys(second)).toEqual(CHANGE_EVENTS);

    const third = await run();
    expect(third.code, third.stderr).toBe(0);
    expect(events(third)).toEqual([]);
  });

  it('local → SFTP with backup_dir on the server: mirrored, removed and replaced files kept there', async () => {
    const w = await workspace();
    const src = join(w.dir, 'src');
    const rep = join(w.remote, 'rep');
    const backup = join(w.remote, 'rep-backup');
    const mtime = await fillSource(src);
    const config = await writeConfig(join(w.dir, 'mirror.yml'), [
      'state_dir: state',
      'log_dir: log',
      'jobs:',
      '  - name: push',
      '    source: src',
      `    replica: sftp://${sshd.username}@${sshd.host}:${sshd.port}${rep}`,
      ...loginLines('    '),
      `    backup_dir: ${backup}`,
    ]);
    const run = () => mirrorFiles(['--config', config, '--stop-on-loop', '1'], home);
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    await expectMirrored(src, rep, { mtimeResolution: 's' });

    await changeSource(src, mtime);
    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    await expectMirrored(src, rep, { mtimeResolution: 's' });
    const backedUp = events(second)
      .filter((line) => line.event === 'backed_up')
      .map((line) => line.relPath)
      .sort();
    expect(backedUp).toEqual(['a.txt', 'keep.txt', 'old/x.txt', 'sub/b.txt', 'sub/deep/c.txt']);
    const kept = await snapshot(backup);
    const stamp = [...kept.keys()].find((rel) => !rel.includes('/')) ?? '';
    expect(stamp).toMatch(/^\d{4}-\d\d-\d\dT\d{6}Z$/);
    expect(kept.get(`${stamp}/keep.txt`)?.type).toBe('file');
    expect(kept.get(`${stamp}/old/x.txt`)?.type).toBe('file');
    expect(kept.has(`${stamp}/a.txt`)).toBe(true);
  });

  it('inline SFTP → local with login flags, then with the keys in ~/.ssh', async () => {
    const w = await workspace();
    const src = join(w.remote, 'src');
    await fillSource(src);
    const url = `sftp://${sshd.username}@${sshd.host}:${sshd.port}${src}`;
    const flags = await mirrorFiles(
      [
        url,
        join(w.dir, 'rep-flags'),
        '--once',
        '-i',
        sshd.clientKeyPath,
        '--known-hosts',
        sshd.knownHostsPath,
      ],
      home,
    );
    expect(flags.code, flags.stderr).toBe(0);
    await expectMirrored(src, join(w.dir, 'rep-flags'), { mtimeResolution: 's' });

    const sshHome = join(w.dir, 'ssh-home');
    await mkdir(join(sshHome, '.ssh'), { recursive: true, mode: 0o700 });
    await copyFile(sshd.clientKeyPath, join(sshHome, '.ssh', 'id_ed25519'));
    await copyFile(sshd.knownHostsPath, join(sshHome, '.ssh', 'known_hosts'));
    const defaults = await mirrorFiles([url, join(w.dir, 'rep-home'), '--once'], sshHome);
    expect(defaults.code, defaults.stderr).toBe(0);
    await expectMirrored(src, join(w.dir, 'rep-home'), { mtimeResolution: 's' });
  });

  it('an unreachable source is refused: exit 1, the replica untouched', async () => {
    const w = await workspace();
    const src = join(w.remote, 'src');
    const rep = join(w.dir, 'rep');
    await fillSource(src);
    const args = [
      `sftp://${sshd.username}@${sshd.host}:${sshd.port}${src}`,
      rep,
      '--once',
      '-i',
      sshd.clientKeyPath,
      '--known-hosts',
      sshd.knownHostsPath,
    ];
    expect((await mirrorFiles(args, home)).code).toBe(0);
    const before = await snapshot(rep);
    await sshd.stopServer();
    try {
      const result = await mirrorFiles(args, home, { timeoutMs: 60_000 });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /E_CONNECTION: cannot read the source sftp:\/\/.*nothing was changed in the replica/,
      );
      expect(events(result)).toEqual([]);
      expect(await snapshot(rep)).toEqual(before);
    } finally {
      await sshd.startServer();
    }
  });
});
