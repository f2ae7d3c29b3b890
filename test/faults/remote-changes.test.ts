/**
 * What partners' servers really hold and do: files truncated, grown or deleted
 * between the listing and the download, a file and a folder the login may not read,
 * names at the edges (255 bytes, Unicode normalisation, newline, backslash, colon),
 * and a link loop. The fetcher (and, for names, the copier) run as the real CLI
 * against the real sshd.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, chown, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AN_HOUR_AGO_MS,
  type FetcherScenario,
  type FetchRun,
  fetchedRemotePaths,
  hashTree,
  listTemporaries,
  makeRemoteTree,
  sha256Of,
  SLOW_TRANSFER_KEYS,
  summaryOf,
  waitFor,
  withLogs,
} from '../support/fetcher-scenario.js';
import { type CliResult, collect, runCli, spawnCli } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import {
  createSystemUser,
  type FaultsServer,
  IS_ROOT,
  NOT_ROOT_REASON,
  PASSWORD_ENV,
  type SystemUser,
  startFaultsServer,
} from './faults-kit.js';
import { checkInvariants, expectErrorLines, type InvariantSpec, type Presence } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

describe('faults: the remote side', () => {
  let server: FaultsServer;
  let temp: TempDir;
  let user: SystemUser | undefined;
  let counter = 0;

  beforeAll(async () => {
    server = await startFaultsServer({ extraConfig: ['PasswordAuthentication yes'] });
    temp = await makeTempDir('faults-remote-');
    if (IS_ROOT) user = await createSystemUser();
  });
  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
    await user?.remove();
  });

  function fresh(label: string): { remoteDir: string; dir: string } {
    counter += 1;
    return {
      remoteDir: join(server.sshd.rootDir, `${label}-${counter}`),
      dir: join(temp.path, `${label}-${counter}`),
    };
  }

  function invariants(
    scenario: FetcherScenario,
    remoteDir: string,
    originals: ReadonlyMap<string, string>,
    results: readonly CliResult[],
    context: string,
    presence: Presence,
    source = 'remote',
  ): InvariantSpec {
    return {
      context,
      originals,
      remoteDir,
      incoming: { dir: join(scenario.incoming, source), expect: presence },
      archive: { dir: join(scenario.archive ?? '', source), expect: presence },
      secrets: [...server.secrets, ...(user ? [user.password] : [])],
      logDirs: [scenario.logDir],
      outputs: results.flatMap((result) => [result.stdout, result.stderr]),
    };
  }

  /**
   * A pass over `first.bin` (oldest, slow) and `victim.bin`: `change` runs once the
   * download of `first.bin` has begun, so after the listing and before `victim.bin`
   * is fetched.
   */
  async function changeAfterListing(label: string, change: (victimPath: string) => Promise<void>) {
    const { remoteDir, dir } = fresh(label);
    await makeRemoteTree(remoteDir, { 'first.bin': randomBytes(2 * 1024 * 1024) }, AN_HOUR_AGO_MS - 60_000);
    await makeRemoteTree(remoteDir, { 'victim.bin': randomBytes(300_000) }, AN_HOUR_AGO_MS);
    const scenario = await server.writeConfig({
      dir,
      keys: { concurrency_limit: 1 },
      sources: [{ name: 'remote', remoteDir, keys: { ...SLOW_TRANSFER_KEYS, after_fetch: 'delete' } }],
    });
    const child = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '1'], {
      env: server.env,
    });
    const done = collect(child, 60_000);
    await waitFor('the first download', async () => (await listTemporaries(scenario.incoming)).length > 0);
    await change(join(remoteDir, 'victim.bin'));
    const changedOriginals = await hashTree(remoteDir);
    const run = withLogs(await done);
    return { scenario, remoteDir, run, changedOriginals };
  }

  async function expectChangedThenFetched(label: string, change: (victimPath: string) => Promise<void>) {
    const { scenario, remoteDir, run, changedOriginals } = await changeAfterListing(label, change);
    expect(run.code, run.stderr).toBe(0);
    expect(fetchedRemotePaths(run)).toEqual([join(remoteDir, 'first.bin')]);
    expect(summaryOf(run, 'remote')).toMatchObject({ result: 'ok', done: 1, skipped: 1, failed: 0 });
    const notice = run.logs.find(
      (line) => line.reason === 'changed while it was fetched (fetched again later)',
    );
    expect(notice, run.stderr).toMatchObject({ level: 40, examples: ['victim.bin'] });
    await checkInvariants(invariants(scenario, remoteDir, changedOriginals, [run], 'changed', 'some'));
    expect([...changedOriginals.keys()]).toContain('victim.bin');

    const next = await server.fetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    expect(fetchedRemotePaths(next)).toEqual([join(remoteDir, 'victim.bin')]);
    await checkInvariants(invariants(scenario, remoteDir, changedOriginals, [run, next], 'next pass', 'all'));
  }

  it(scenarioTitle('remote-truncated'), async () => {
    await expectChangedThenFetched('truncated', async (victimPath) => {
      await truncate(victimPath, 100_000);
      // The same mtime as listed: only the size gives it away.
      await utimes(victimPath, AN_HOUR_AGO_MS / 1000, AN_HOUR_AGO_MS / 1000);
    });
  });

  it(scenarioTitle('remote-grows'), async () => {
    await expectChangedThenFetched('grows', async (victimPath) => {
      await appendFile(victimPath, randomBytes(50_000));
      await utimes(victimPath, AN_HOUR_AGO_MS / 1000, AN_HOUR_AGO_MS / 1000);
    });
  });

  it(scenarioTitle('remote-deleted'), async () => {
    const { scenario, remoteDir, run, changedOriginals } = await changeAfterListing('deleted', (victimPath) =>
      rm(victimPath),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(summaryOf(run, 'remote')).toMatchObject({ result: 'ok', done: 1, skipped: 1, failed: 0 });
    const notice = run.logs.find((line) => line.reason === 'gone from the server before it could be fetched');
    expect(notice, run.stderr).toMatchObject({ level: 40, examples: ['victim.bin'] });
    await checkInvariants(invariants(scenario, remoteDir, changedOriginals, [run], 'deleted', 'all'));
  });

  /** A fetcher config that logs in as the system user, over files in the user's own folder. */
  async function asUser(label: string, sourceKeys: Record<string, unknown> = {}) {
    if (!user) throw new Error('no system user');
    counter += 1;
    const remoteDir = join(user.homeDir, `${label}-${counter}`);
    const scenario = await server.writeConfig({
      dir: join(temp.path, `${label}-${counter}`),
      sources: [{ name: 'remote', remoteDir, keys: user.sourceKeys(sourceKeys) }],
    });
    const fetch = (args: readonly string[] = []): Promise<FetchRun> =>
      server.fetch(scenario, args, { env: { [PASSWORD_ENV]: user?.password ?? '' } });
    return { remoteDir, scenario, fetch };
  }

  async function giveToUser(root: string, paths: readonly string[]): Promise<void> {
    for (const path of [root, ...paths.map((relPath) => join(root, relPath))])
      await chown(path, user?.uid ?? 0, user?.gid ?? 0);
  }

  it.skipIf(!IS_ROOT)(
    `${scenarioTitle('permission-file')} (${IS_ROOT ? 'as a system user' : NOT_ROOT_REASON})`,
    async () => {
      const { remoteDir, scenario, fetch } = await asUser('denied-file', { after_fetch: 'delete' });
      await makeRemoteTree(remoteDir, { 'a.csv': 'a', 'denied.csv': randomBytes(5000), 'c.csv': 'c' });
      await giveToUser(remoteDir, ['a.csv', 'denied.csv', 'c.csv']);
      await chmod(join(remoteDir, 'denied.csv'), 0o000);
      const originals = await hashTree(remoteDir);
      const hostLabel = `${user?.username}@${server.sshd.host}:${server.sshd.port}`;

      const run = await fetch();
      expect(run.code, run.stderr).toBe(1);
      expect(fetchedRemotePaths(run)).toEqual([join(remoteDir, 'a.csv'), join(remoteDir, 'c.csv')]);
      expectErrorLines(
        run.logs,
        { code: 'E_PERMISSION', host: hostLabel, path: join(remoteDir, 'denied.csv') },
        'denied file',
      );
      expect(summaryOf(run, 'remote')).toMatchObject({ result: 'failed', done: 2, failed: 1 });
      await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'denied file', 'some'));
      expect([...(await hashTree(remoteDir)).keys()]).toEqual(['denied.csv']);
      expect([...(await hashTree(join(scenario.incoming, 'remote'))).keys()]).toEqual(['a.csv', 'c.csv']);
    },
  );

  it.skipIf(!IS_ROOT)(
    `${scenarioTitle('permission-folder')} (${IS_ROOT ? 'as a system user' : NOT_ROOT_REASON})`,
    async () => {
      const { remoteDir, scenario, fetch } = await asUser('denied-folder', { recursive: true });
      await makeRemoteTree(remoteDir, { 'top.csv': 't', 'open/o.csv': 'o', 'closed/x.csv': 'x' });
      await giveToUser(remoteDir, ['top.csv', 'open', 'open/o.csv', 'closed', 'closed/x.csv']);
      await chmod(join(remoteDir, 'closed'), 0o000);
      const originals = await hashTree(remoteDir);
      const hostLabel = `${user?.username}@${server.sshd.host}:${server.sshd.port}`;

      const run = await fetch();
      expect(run.code, run.stderr).toBe(1);
      expect(fetchedRemotePaths(run)).toEqual([join(remoteDir, 'open/o.csv'), join(remoteDir, 'top.csv')]);
      const lines = expectErrorLines(
        run.logs,
        { code: 'E_PERMISSION', host: hostLabel, path: join(remoteDir, 'closed') },
        'denied folder',
      );
      expect(lines).toHaveLength(1);
      await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'denied folder', 'some'));
      await chmod(join(remoteDir, 'closed'), 0o755);
    },
  );

  /** Fetches `files` (fetcher, then copier into one destination) and returns what each place holds. */
  async function fetchAndCopy(
    label: string,
    files: Record<string, string | Buffer>,
    sourceKeys: Record<string, unknown> = {},
  ) {
    const { remoteDir, dir } = fresh(label);
    await makeRemoteTree(remoteDir, files);
    const scenario = await server.writeConfig({
      dir,
      sources: [{ name: 'remote', remoteDir, keys: sourceKeys }],
    });
    const fetched = await server.fetch(scenario);
    const destination = join(dir, 'out');
    const copierConfig = join(dir, 'copier.yml');
    await writeFile(
      copierConfig,
      dump({
        incoming: scenario.incoming,
        state_dir: join(dir, 'copier-state'),
        log_dir: join(dir, 'copier-log'),
        destinations: [{ name: 'out', path: destination }],
      }),
    );
    const copied = await runCli('copy-files', ['--config', copierConfig, '--stop-on-loop', '1']);
    return { remoteDir, scenario, fetched, copied, destination, copierLogDir: join(dir, 'copier-log') };
  }

  async function expectEverywhere(
    label: string,
    files: Record<string, string | Buffer>,
    refused: readonly string[] = [],
  ) {
    const result = await fetchAndCopy(label, files);
    const { remoteDir, scenario, fetched, copied, destination } = result;
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(copied.code, copied.stderr).toBe(0);
    const all = await hashTree(remoteDir);
    const taken = new Map([...all].filter(([relPath]) => !refused.includes(relPath)));
    await checkInvariants({
      ...invariants(scenario, remoteDir, taken, [fetched, copied], label, 'all'),
      incoming: { dir: join(scenario.incoming, 'remote'), expect: 'none' },
      destinations: [{ dir: join(destination, 'remote'), expect: 'all' }],
      copierRan: true,
      logDirs: [scenario.logDir, result.copierLogDir],
    });
    return { ...result, taken };
  }

  it(scenarioTitle('name-255-bytes'), async () => {
    const name = `${'é'.repeat(125)}x.csv`;
    expect(Buffer.byteLength(name)).toBe(255);
    const first = await expectEverywhere('long-name', { [name]: randomBytes(70_000) });
    expect([...first.taken.keys()]).toEqual([name]);

    // The partner replaces it: the archive keeps both (the older one renamed with a
    // suffix, which must still fit in 255 bytes), the destination gets the new one.
    const { remoteDir, scenario, destination } = first;
    const newer = randomBytes(80_000);
    await makeRemoteTree(remoteDir, { [name]: newer }, AN_HOUR_AGO_MS + 60_000);
    const fetched = await server.fetch(scenario);
    expect(fetched.code, fetched.stderr).toBe(0);
    const copied = await runCli('copy-files', [
      '--config',
      join(scenario.dir, 'copier.yml'),
      '--stop-on-loop',
      '1',
    ]);
    expect(copied.code, copied.stderr).toBe(0);
    const archived = await hashTree(join(scenario.archive ?? '', 'remote'));
    expect(archived.size).toBe(2);
    expect(archived.get(name)).toBe(sha256Of(newer));
    for (const relPath of archived.keys()) expect(Buffer.byteLength(relPath)).toBeLessThanOrEqual(255);
    expect((await hashTree(join(destination, 'remote'))).get(name)).toBe(sha256Of(newer));
    expect(await listTemporaries(scenario.incoming, scenario.archive ?? '', destination)).toEqual([]);
  });

  it(scenarioTitle('names-unicode-normalisation'), async () => {
    const nfc = 'caf\u00e9.csv';
    const nfd = 'cafe\u0301.csv';
    expect(nfc.normalize('NFC')).toBe(nfd.normalize('NFC'));
    const { taken } = await expectEverywhere('unicode', { [nfc]: 'composed', [nfd]: 'decomposed' });
    expect(taken.size).toBe(2);
    expect(new Set(taken.values()).size).toBe(2);
  });

  it(scenarioTitle('names-odd-characters'), async () => {
    const { fetched } = await expectEverywhere(
      'odd',
      { 'a\\b.csv': 'backslash', 'c:d.csv': 'colon', 'e\nf.csv': 'newline' },
      ['e\nf.csv'],
    );
    const warning = fetched.logs.find((line) => String(line.reason).startsWith('unsafe-name'));
    expect(warning, fetched.stderr).toMatchObject({ level: 40, examples: ['e\nf.csv'] });
    expect(String(warning?.reason)).toContain('control character');
    expect(summaryOf(fetched, 'remote')).toMatchObject({ result: 'ok', done: 2, skipped: 1, failed: 0 });
  });

  it(scenarioTitle('link-loop'), async () => {
    const { remoteDir, dir } = fresh('loop');
    await makeRemoteTree(remoteDir, { 'real.csv': 'real', 'sub/real2.csv': 'real2' });
    await symlink('loop-b', join(remoteDir, 'loop-a'));
    await symlink('loop-a', join(remoteDir, 'loop-b'));
    await symlink('..', join(remoteDir, 'sub', 'up'));
    const originals = await hashTree(remoteDir);
    const scenario = await server.writeConfig({
      dir,
      sources: [{ name: 'remote', remoteDir, keys: { recursive: true, follow_links: true } }],
    });
    const run = await server.fetch(scenario, [], { timeoutMs: 30_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(fetchedRemotePaths(run)).toEqual([join(remoteDir, 'real.csv'), join(remoteDir, 'sub/real2.csv')]);
    const skipped = run.logs.filter((line) => String(line.reason).startsWith('link-skipped'));
    expect(skipped.flatMap((line) => line.examples as string[]).sort()).toEqual([
      'loop-a',
      'loop-b',
      'sub/up',
    ]);
    expect(summaryOf(run, 'remote')).toMatchObject({ result: 'ok', done: 2, skipped: 3, failed: 0 });
    await checkInvariants(invariants(scenario, remoteDir, originals, [run], 'link loop', 'all'));
    // Not again on the next pass.
    const next = await server.fetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    expect(fetchedRemotePaths(next)).toEqual([]);
  });
});
