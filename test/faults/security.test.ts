/**
 * Security under fault: a host key that changes between passes, and secrets
 * (password, key passphrase, private key text) that must never reach a log file, an
 * error, or the console, at any verbosity, in a dry run, or when the login fails.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchedRemotePaths,
  hashTree,
  listFiles,
  makeRemoteTree,
  summaryOf,
} from '../support/fetcher-scenario.js';
import { type CliResult, jsonLines, runCli } from '../support/run-cli.js';
import { fingerprintOf } from '../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import {
  createSystemUser,
  type FaultsServer,
  IS_ROOT,
  NOT_ROOT_REASON,
  PASSPHRASE_ENV,
  PASSWORD_ENV,
  type SystemUser,
  startFaultsServer,
} from './faults-kit.js';
import { checkInvariants, checkNoSecrets, expectErrorLines, expectNoStackTrace } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

describe('faults: security', () => {
  let server: FaultsServer;
  let temp: TempDir;
  let user: SystemUser | undefined;

  beforeAll(async () => {
    server = await startFaultsServer({ extraConfig: ['PasswordAuthentication yes'] });
    temp = await makeTempDir('faults-security-');
    if (IS_ROOT) user = await createSystemUser();
  });
  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
    await user?.remove();
  });

  it(scenarioTitle('host-key-changed'), async () => {
    const { sshd } = server;
    const remoteDir = join(sshd.rootDir, 'hostkey');
    await makeRemoteTree(remoteDir, { 'first.csv': 'first' });
    const knownHosts = join(temp.path, 'known_hosts');
    await copyFile(sshd.knownHostsPath, knownHosts);
    const scenario = await server.writeConfig({
      dir: join(temp.path, 'hostkey'),
      sources: [{ name: 'hk', remoteDir, keys: { known_hosts: knownHosts } }],
    });
    const results: CliResult[] = [];
    const first = await server.fetch(scenario);
    results.push(first);
    expect(first.code, first.stderr).toBe(0);

    // The server gets a new host key (a reinstall, or someone in the middle).
    const backup = join(temp.path, 'host_key.original');
    await copyFile(sshd.hostKeyPath, backup);
    await copyFile(`${sshd.hostKeyPath}.pub`, `${backup}.pub`);
    try {
      await sshd.stopServer();
      await rm(sshd.hostKeyPath);
      await rm(`${sshd.hostKeyPath}.pub`);
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', sshd.hostKeyPath], {
        stdio: 'pipe',
      });
      await sshd.startServer();
      const newLine = (await readFile(`${sshd.hostKeyPath}.pub`, 'utf8'))
        .trim()
        .split(' ')
        .slice(0, 2)
        .join(' ');
      const newFingerprint = fingerprintOf(newLine);
      await makeRemoteTree(remoteDir, { 'second.csv': 'second' });

      for (const passNumber of [2, 3]) {
        const refused = await server.fetch(scenario);
        results.push(refused);
        expect(refused.code, refused.stderr).toBe(1);
        expect(fetchedRemotePaths(refused)).toEqual([]);
        const error = summaryOf(refused, 'hk').error ?? '';
        expect(error, `pass ${passNumber}`).toMatch(/^E_HOSTKEY: /);
        expect(error).toContain(sshd.hostKeyFingerprint);
        expect(error).toContain(newFingerprint);
        expectErrorLines(
          refused.logs,
          { code: 'E_HOSTKEY', host: `${sshd.username}@127.0.0.1:${sshd.port}` },
          'host key',
        );
        expect(await listFiles(join(scenario.incoming, 'hk'))).toEqual(['first.csv']);
      }

      // The operator checks the new key and updates known_hosts: the next pass fetches.
      await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${newLine}\n`);
      const accepted = await server.fetch(scenario);
      results.push(accepted);
      expect(accepted.code, accepted.stderr).toBe(0);
      expect(fetchedRemotePaths(accepted)).toEqual([join(remoteDir, 'second.csv')]);
      await checkInvariants({
        context: 'host key updated',
        originals: await hashTree(remoteDir),
        remoteDir,
        incoming: { dir: join(scenario.incoming, 'hk'), expect: 'all' },
        archive: { dir: join(scenario.archive ?? '', 'hk'), expect: 'all' },
        secrets: server.secrets,
        logDirs: [scenario.logDir],
        outputs: results.flatMap((result) => [result.stdout, result.stderr]),
      });
    } finally {
      // Put the fixture's key back for the other tests of this file.
      await sshd.stopServer();
      await copyFile(backup, sshd.hostKeyPath);
      await copyFile(`${backup}.pub`, `${sshd.hostKeyPath}.pub`);
      await sshd.startServer();
    }
  });

  it(`${scenarioTitle('secrets-never-logged')}${IS_ROOT ? '' : ` (password login skipped: ${NOT_ROOT_REASON})`}`, {
    timeout: 90_000,
  }, async () => {
    const { sshd } = server;
    const keyDir = join(sshd.rootDir, 'secret-key');
    await makeRemoteTree(keyDir, { 'k.csv': 'by key' });
    const passwordDir = user ? join(user.homeDir, 'secret-pw') : undefined;
    if (user && passwordDir) {
      await makeRemoteTree(passwordDir, { 'p.csv': 'by password' });
      execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, passwordDir]);
    }
    const wrongPassword = `${user?.password ?? 'none'}-wrong`;
    const wrongPassphrase = `${server.passphrase}-wrong`;
    const secrets = [...server.secrets, wrongPassphrase, ...(user ? [user.password, wrongPassword] : [])];
    const dir = join(temp.path, 'secrets');
    const sources = [
      { name: 'by-key', remoteDir: keyDir },
      ...(user && passwordDir
        ? [{ name: 'by-password', remoteDir: passwordDir, keys: user.sourceKeys() }]
        : []),
    ];
    const scenario = await server.writeConfig({ dir, sources });
    const goodEnv = { [PASSPHRASE_ENV]: server.passphrase, [PASSWORD_ENV]: user?.password ?? '' };
    const results: CliResult[] = [];
    const logDirs = [scenario.logDir];

    for (const verbosity of ['-v', '-vv', '-vvv']) {
      const dry = await server.fetch(scenario, ['--dry-run', verbosity], { env: goodEnv });
      results.push(dry);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain('would fetch by-key:');
      if (user) expect(dry.stdout).toContain('would fetch by-password:');
    }
    const real = await server.fetch(scenario, ['-vvv'], { env: goodEnv });
    results.push(real);
    expect(real.code, real.stderr).toBe(0);
    expect(fetchedRemotePaths(real)).toHaveLength(user ? 2 : 1);
    await checkInvariants({
      context: 'fetched by key',
      originals: await hashTree(keyDir),
      remoteDir: keyDir,
      incoming: { dir: join(scenario.incoming, 'by-key'), expect: 'all' },
      archive: { dir: join(scenario.archive ?? '', 'by-key'), expect: 'all' },
      secrets,
      logDirs,
      outputs: results.flatMap((result) => [result.stdout, result.stderr]),
    });

    // The copier delivering to an SFTP destination with the password, at -vvv.
    if (user) {
      const copierConfig = join(dir, 'copier.yml');
      const copierLog = join(dir, 'copier-log');
      logDirs.push(copierLog);
      await writeFile(
        copierConfig,
        dump({
          incoming: scenario.incoming,
          state_dir: join(dir, 'copier-state'),
          log_dir: copierLog,
          destinations: [
            {
              name: 'partner',
              url: `sftp://${user.username}@${sshd.host}:${sshd.port}${join(user.homeDir, 'drop')}`,
              password_env: PASSWORD_ENV,
              known_hosts: sshd.knownHostsPath,
              retries: 0,
            },
          ],
        }),
      );
      for (const args of [['--dry-run', '-vvv'], ['-vvv']]) {
        const copied = await runCli(
          'copy-files',
          ['--config', copierConfig, '--stop-on-loop', '1', ...args],
          {
            env: goodEnv,
          },
        );
        results.push(copied);
        expect(copied.code, copied.stderr).toBe(0);
      }
      expect((await listFiles(join(user.homeDir, 'drop'))).sort()).toEqual([
        'by-key/k.csv',
        'by-password/p.csv',
      ]);
    }

    // Wrong secrets: E_AUTH naming the host with a hint, and neither the wrong nor the right value anywhere.
    const wrong = await server.fetch(scenario, ['-vvv'], {
      env: { [PASSPHRASE_ENV]: wrongPassphrase, [PASSWORD_ENV]: wrongPassword },
    });
    results.push(wrong);
    expect(wrong.code, wrong.stderr).toBe(1);
    expect(summaryOf(wrong, 'by-key').error).toMatch(/^E_AUTH: .*wrong passphrase — .*passphrase_env/);
    // A local key that cannot be opened is named by its path; a refused login by the host.
    expectErrorLines(
      wrong.logs.filter((line) => line.source === 'by-key'),
      { code: 'E_AUTH', path: server.keyPath },
      'by-key',
    );
    if (user) {
      expectErrorLines(
        wrong.logs.filter((line) => line.source === 'by-password'),
        { code: 'E_AUTH', host: `${user.username}@127.0.0.1:${sshd.port}` },
        'by-password',
      );
    }
    if (user) {
      expect(summaryOf(wrong, 'by-password').error).toMatch(
        /^E_AUTH: authentication failed for .* — check the password/,
      );
      expect(summaryOf(wrong, 'by-password').error).toContain(`${user.username}@127.0.0.1:${sshd.port}`);
    }
    for (const result of results) expectNoStackTrace(result.stderr);
    await checkNoSecrets(
      secrets,
      logDirs,
      results.flatMap((result) => [result.stdout, result.stderr]),
      'secrets',
    );
    // The verbose lines were really written (otherwise the grep proves little): debug lines,
    // each file's steps at trace level (-vv) and the SSH protocol, auth included (-vvv).
    const debugLines = jsonLines(await readFile(join(scenario.logDir, 'all-debug.log'), 'utf8'));
    expect(debugLines.filter((line) => line.level === 20).length).toBeGreaterThan(10);
    const traceLines = debugLines.filter((line) => line.level === 10);
    expect(
      traceLines.filter((line) => line.msg === 'recorded in the ledger and renamed into incoming'),
    ).toHaveLength(user ? 2 : 1);
    const protocolLines = traceLines.filter((line) => line.op === 'ssh').map((line) => String(line.msg));
    expect(protocolLines.some((msg) => msg.includes('USERAUTH'))).toBe(true);
    if (user) expect(protocolLines.some((msg) => /USERAUTH_REQUEST \(password\)/.test(msg))).toBe(true);
  });
});
