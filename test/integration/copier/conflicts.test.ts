/**
 * What the copier does when the target name already holds a file, for every
 * `on_conflict` mode, plus the copy options that change how a file is written:
 * verify: sha256, link: hardlink, and an identical file already in place.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  outputOf,
  errorLines,
  findTemporaries,
  passSummary,
  readTree,
  seededBytes,
  sftpDestination,
  sha256Of,
  writeFileWithMtime,
} from '../../support/copier-scenario.js';
import { cliPath, collect } from '../../support/run-cli.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';

const OURS_MTIME_MS = Date.UTC(2026, 2, 1, 12, 0, 0);
const THEIRS_MTIME_MS = Date.UTC(2025, 5, 1, 8, 0, 0);

describe('copy-files on_conflict', () => {
  let scenario: CopierScenario;
  const out = (...parts: string[]): string => scenario.path('out', ...parts);

  beforeEach(async () => {
    scenario = await CopierScenario.create('copier-conflict-');
  });
  afterEach(async () => {
    await scenario?.remove();
  });

  it('overwrite replaces, skip keeps theirs, rename writes "name (1).ext", fail keeps theirs and the file', async () => {
    const theirs = Buffer.from('theirs: a different file under the same name\n');
    for (const mode of ['overwrite', 'skip', 'rename', 'fail']) {
      await scenario.addFile(`${mode}/report.csv`, `ours for ${mode}\n`, OURS_MTIME_MS);
      await writeFileWithMtime(out(mode, mode, 'report.csv'), theirs, THEIRS_MTIME_MS);
    }
    await scenario.writeConfig({
      destinations: ['overwrite', 'skip', 'rename', 'fail'].map((mode) => ({
        name: mode,
        path: out(mode),
        include: [`${mode}/**`],
        on_conflict: mode,
      })),
    });
    const theirsInode = async (mode: string): Promise<number> =>
      (await stat(out(mode, mode, 'report.csv'))).ino;
    const inodes = {
      skip: await theirsInode('skip'),
      fail: await theirsInode('fail'),
      rename: await theirsInode('rename'),
    };

    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code, outputOf(result)).toBe(1);

    // overwrite: ours, with our mtime.
    const overwritten = await readTree(out('overwrite'));
    expect(overwritten['overwrite/report.csv']).toMatchObject({
      sha256: sha256Of('ours for overwrite\n'),
      mtimeMs: OURS_MTIME_MS,
    });
    // skip: theirs untouched, a warning, and the file left incoming (it counts as delivered).
    expect(await readFile(out('skip', 'skip', 'report.csv'), 'utf8')).toBe(theirs.toString());
    expect(await theirsInode('skip')).toBe(inodes.skip);
    const skipWarning = result.logs.find(
      (line) =>
        line.level === 40 && line.name === 'skip' && String(line.reason).includes('on_conflict: skip'),
    );
    expect(skipWarning, result.stderr).toMatchObject({ count: 1, examples: ['skip/report.csv'] });
    // rename: theirs untouched, ours beside it.
    expect(await readTree(out('rename'))).toMatchObject({
      'rename/report.csv': { sha256: sha256Of(theirs), ino: inodes.rename },
      'rename/report (1).csv': { sha256: sha256Of('ours for rename\n'), mtimeMs: OURS_MTIME_MS },
    });
    // fail: theirs untouched, ours still in incoming, one error naming the path and what to do.
    expect(await readFile(out('fail', 'fail', 'report.csv'), 'utf8')).toBe(theirs.toString());
    expect(await theirsInode('fail')).toBe(inodes.fail);
    expect(Object.keys(await readTree(scenario.incoming))).toEqual(['fail/report.csv']);
    const errors = errorLines(result.logs);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ destination: 'fail', err: { code: 'E_EXISTS' } });
    expect(String(errors[0]?.msg)).toContain(out('fail', 'fail', 'report.csv'));
    expect(String(errors[0]?.msg)).toMatch(
      /remove or rename the file at the destination, or change on_conflict/,
    );
    expect(passSummary(result.logs, 'fail')).toMatchObject({ result: 'failed', failed: 1 });

    // The operator moves theirs away: the next pass delivers ours and empties incoming.
    await writeFile(out('fail', 'fail', 'report.csv.theirs'), theirs);
    await rm(out('fail', 'fail', 'report.csv'));
    const again = await scenario.run(['--stop-on-loop', '1']);
    expect(again.code, outputOf(again)).toBe(0);
    expect(await readFile(out('fail', 'fail', 'report.csv'), 'utf8')).toBe('ours for fail\n');
    expect(await readTree(scenario.incoming)).toEqual({});
    // Nothing else was touched again: rename did not make a "(2)", overwrite did not rewrite.
    expect(Object.keys(await readTree(out('rename'))).sort()).toEqual([
      'rename/report (1).csv',
      'rename/report.csv',
    ]);
    expect(await readTree(out('overwrite'))).toEqual(overwritten);
    expect(await findTemporaries(out())).toEqual([]);
  });

  it('overwrite replaces a big file atomically: a reader sees the old or the new file, never a mix', async () => {
    const ours = seededBytes(11, 24 * 1024 * 1024);
    const theirs = seededBytes(12, 24 * 1024 * 1024);
    await scenario.addFile('big.bin', ours, OURS_MTIME_MS);
    await writeFileWithMtime(out('dst', 'big.bin'), theirs, THEIRS_MTIME_MS);
    await scenario.writeConfig({
      destinations: [{ name: 'dst', path: out('dst'), on_conflict: 'overwrite', verify: 'sha256' }],
    });
    const allowed = new Set([sha256Of(ours), sha256Of(theirs)]);
    const seen = new Set<string>();
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const content = await readFile(out('dst', 'big.bin'));
        seen.add(sha256Of(content));
      }
    })();
    const result = await scenario.run(['--stop-on-loop', '1']);
    reading = false;
    await reader;
    expect(result.code, outputOf(result)).toBe(0);
    expect([...seen].every((hash) => allowed.has(hash))).toBe(true);
    expect(sha256Of(await readFile(out('dst', 'big.bin')))).toBe(sha256Of(ours));
    expect(seen.size).toBeGreaterThanOrEqual(1);
  });

  it('an identical file already in place (same size and mtime) is delivered without copying', async () => {
    const content = Buffer.from('same everywhere\n');
    await scenario.addFile('same.csv', content, OURS_MTIME_MS);
    await writeFileWithMtime(out('rename', 'same.csv'), content, OURS_MTIME_MS);
    await writeFileWithMtime(out('fail', 'same.csv'), content, OURS_MTIME_MS);
    await scenario.writeConfig({
      destinations: [
        { name: 'rename', path: out('rename'), on_conflict: 'rename' },
        { name: 'fail', path: out('fail'), on_conflict: 'fail', verify: 'sha256' },
      ],
    });
    const before = { rename: await readTree(out('rename')), fail: await readTree(out('fail')) };
    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code, outputOf(result)).toBe(0);
    expect({ rename: await readTree(out('rename')), fail: await readTree(out('fail')) }).toEqual(before);
    expect(passSummary(result.logs, 'rename')).toMatchObject({ done: 0, alreadyDone: 1 });
    expect(await readTree(scenario.incoming)).toEqual({});
  });
});

describe('copy-files on_conflict at an SFTP destination', () => {
  let sshd: SshdFixture;
  let scenario: CopierScenario;

  beforeAll(async () => {
    sshd = await startSshd();
    scenario = await CopierScenario.create('copier-sftp-conflict-');
  });
  afterAll(async () => {
    await scenario?.remove();
    await sshd?.stop();
  });

  it('every mode behaves as on a local folder', async () => {
    const remote = (...parts: string[]): string => join(sshd.rootDir, 'conflicts', ...parts);
    const theirs = 'theirs on the server\n';
    for (const mode of ['overwrite', 'skip', 'rename', 'fail']) {
      await scenario.addFile(`${mode}/report.csv`, `ours for ${mode}\n`, OURS_MTIME_MS);
      await writeFileWithMtime(remote(mode, mode, 'report.csv'), theirs, THEIRS_MTIME_MS);
    }
    // Identical, with the mtime SFTP keeps (whole seconds): already there.
    await scenario.addFile('fail/same.csv', 'same\n', OURS_MTIME_MS);
    await writeFileWithMtime(remote('fail', 'fail', 'same.csv'), 'same\n', OURS_MTIME_MS);
    await scenario.writeConfig({
      destinations: ['overwrite', 'skip', 'rename', 'fail'].map((mode) =>
        sftpDestination(sshd, mode, remote(mode), { include: [`${mode}/**`], on_conflict: mode }),
      ),
    });
    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code, outputOf(result)).toBe(1);
    expect(await readFile(remote('overwrite', 'overwrite', 'report.csv'), 'utf8')).toBe(
      'ours for overwrite\n',
    );
    expect(await readFile(remote('skip', 'skip', 'report.csv'), 'utf8')).toBe(theirs);
    expect(await readFile(remote('rename', 'rename', 'report.csv'), 'utf8')).toBe(theirs);
    expect(await readFile(remote('rename', 'rename', 'report (1).csv'), 'utf8')).toBe('ours for rename\n');
    expect(await readFile(remote('fail', 'fail', 'report.csv'), 'utf8')).toBe(theirs);
    expect(Object.keys(await readTree(scenario.incoming))).toEqual(['fail/report.csv']);
    const errors = errorLines(result.logs);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ destination: 'fail', err: { code: 'E_EXISTS' } });
    expect(passSummary(result.logs, 'fail')).toMatchObject({ alreadyDone: 1, failed: 1 });
    expect(await findTemporaries(join(sshd.rootDir, 'conflicts'))).toEqual([]);
  });
});

describe('copy-files copy options', () => {
  let scenario: CopierScenario;
  const out = (...parts: string[]): string => scenario.path('out', ...parts);

  beforeEach(async () => {
    scenario = await CopierScenario.create('copier-options-');
  });
  afterEach(async () => {
    await scenario?.remove();
  });

  it('verify: sha256 delivers byte-identical copies with the source mtime', async () => {
    const files = { 'a.bin': seededBytes(21, 3 * 1024 * 1024 + 17), 'deep/b.bin': seededBytes(22, 1) };
    for (const [relPath, content] of Object.entries(files))
      await scenario.addFile(relPath, content, OURS_MTIME_MS);
    await scenario.writeConfig({ destinations: [{ name: 'dst', path: out('dst'), verify: 'sha256' }] });
    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code, outputOf(result)).toBe(0);
    const tree = await readTree(out('dst'));
    for (const [relPath, content] of Object.entries(files)) {
      expect(tree[relPath]).toMatchObject({ sha256: sha256Of(content), mtimeMs: OURS_MTIME_MS });
    }
  });

  it('link: hardlink gives the destination the same inode as the incoming file', async () => {
    await scenario.addFile('linked.csv', 'one inode, two names\n', OURS_MTIME_MS);
    // A second destination that refuses the file keeps it in incoming, so the link can be seen.
    await writeFileWithMtime(out('held', 'linked.csv'), 'theirs\n', THEIRS_MTIME_MS);
    await scenario.writeConfig({
      destinations: [
        { name: 'linked', path: out('linked'), link: 'hardlink' },
        { name: 'held', path: out('held'), on_conflict: 'fail' },
      ],
    });
    const first = await scenario.run(['--stop-on-loop', '1']);
    expect(first.code, outputOf(first)).toBe(1);
    const source = await stat(join(scenario.incoming, 'linked.csv'));
    const linked = await stat(out('linked', 'linked.csv'));
    expect(linked.ino).toBe(source.ino);
    expect(linked.nlink).toBe(2);

    await writeFile(out('held', 'linked.csv'), 'one inode, two names\n');
    await utimes(out('held', 'linked.csv'), OURS_MTIME_MS / 1000, OURS_MTIME_MS / 1000);
    const second = await scenario.run(['--stop-on-loop', '1']);
    expect(second.code, outputOf(second)).toBe(0);
    expect(await readTree(scenario.incoming)).toEqual({});
    const after = await stat(out('linked', 'linked.csv'));
    expect({ ino: after.ino, nlink: after.nlink }).toEqual({ ino: source.ino, nlink: 1 });
    expect(await readFile(out('linked', 'linked.csv'), 'utf8')).toBe('one inode, two names\n');
  });

  it('file_mode "0444" (read-only copies) works for a user who is not root', async () => {
    await scenario.addFile('ro/a.csv', 'read only copy\n', OURS_MTIME_MS);
    await scenario.writeConfig({
      file_mode: '0444',
      destinations: [
        { name: 'plain', path: out('plain') },
        { name: 'hashed', path: out('hashed'), verify: 'sha256' },
      ],
    });
    // As root every open succeeds; run as nobody to see what an ordinary user gets.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) await chownTree(scenario.root, 65534, 65534);
    const child = spawn(
      process.execPath,
      [cliPath('copy-files'), '--config', scenario.configPath, '--stop-on-loop', '1'],
      {
        cwd: scenario.root,
        env: { ...process.env, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      },
    );
    const result = await collect(child, 30_000);
    expect(result.code, outputOf(result)).toBe(0);
    for (const name of ['plain', 'hashed']) {
      const copy = await stat(out(name, 'ro', 'a.csv'));
      expect(copy.mode & 0o777, name).toBe(0o444);
      expect(await readFile(out(name, 'ro', 'a.csv'), 'utf8')).toBe('read only copy\n');
    }
  });
});

/** Hands a whole tree (and the folders above it inside the test root) to another user. */
async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  await chmod(join(root, '..'), 0o755).catch(() => undefined);
  await chmod(root, 0o755);
  await chown(root, uid, gid);
  for (const name of await readdir(root, { recursive: true })) await chown(join(root, name), uid, gid);
}
