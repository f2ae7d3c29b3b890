/**
 * What every fault scenario starts from: the real sshd fixture, reached with an
 * encrypted copy of its client key whose passphrase comes from the environment (so
 * every scenario has secrets to look for in its logs), and fetcher configs written
 * for it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type FetcherScenario,
  type FetchRun,
  runFetch,
  type ScenarioSource,
  writeFetcherConfig,
} from '../support/fetcher-scenario.js';
import type { CliRunOptions } from '../support/run-cli.js';
import { type SshdFixture, type SshdFixtureOptions, startSshd } from '../support/sshd-fixture.js';
import { testTempRoot } from '../support/temp-dir.js';

export const PASSPHRASE_ENV = 'FSL_FAULTS_KEY_PASSPHRASE';

export interface FaultsServer {
  sshd: SshdFixture;
  /** The client key, encrypted with `passphrase`. */
  keyPath: string;
  passphrase: string;
  /** Values that must never appear in a log file or the console. */
  secrets: string[];
  /** Environment for the CLI: the passphrase variable. */
  env: Record<string, string>;
  /** Source keys for the fixture with the encrypted key; `port` overridable (a proxy). */
  sourceKeys(extra?: Record<string, unknown>): Record<string, unknown>;
  /** A fetcher config for the fixture, every source using the encrypted key. */
  writeConfig(options: {
    dir: string;
    sources: readonly ScenarioSource[];
    archive?: boolean;
    keys?: Record<string, unknown>;
  }): Promise<FetcherScenario>;
  /** `fetch-files --config … --stop-on-loop 1 …args` with the passphrase in its environment. */
  fetch(scenario: FetcherScenario, args?: readonly string[], options?: CliRunOptions): Promise<FetchRun>;
  stop(): Promise<void>;
}

export async function startFaultsServer(options: SshdFixtureOptions = {}): Promise<FaultsServer> {
  const sshd = await startSshd(options);
  const passphrase = `pp-${randomBytes(12).toString('base64url')}`;
  const keyPath = join(sshd.dir, 'client_key_encrypted');
  await copyFile(sshd.clientKeyPath, keyPath);
  // Few KDF rounds: every connection decrypts the key, and the suite makes many.
  execFileSync('ssh-keygen', ['-q', '-p', '-a', '2', '-P', '', '-N', passphrase, '-f', keyPath], {
    stdio: 'pipe',
  });
  const secrets = [passphrase, ...privateKeyBodyLines(await readFile(keyPath, 'utf8'))];
  const env = { [PASSPHRASE_ENV]: passphrase };
  const sourceKeys = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    private_key: keyPath,
    passphrase_env: PASSPHRASE_ENV,
    ...extra,
  });
  return {
    sshd,
    keyPath,
    passphrase,
    secrets,
    env,
    sourceKeys,
    writeConfig: (config) =>
      writeFetcherConfig({
        sshd,
        ...config,
        sources: config.sources.map((source) => ({ ...source, keys: sourceKeys(source.keys) })),
      }),
    fetch: (scenario, args = [], runOptions = {}) =>
      runFetch(scenario, args, { ...runOptions, env: { ...env, ...runOptions.env } }),
    stop: () => sshd.stop(),
  };
}

/** The base64 lines of a PEM/OpenSSH private key: a leak of any of them is a leak of the key. */
export function privateKeyBodyLines(keyText: string): string[] {
  return keyText
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'));
}

export const PASSWORD_ENV = 'FSL_FAULTS_PASSWORD';

/** Why the tests that need a system account are skipped when not run as root. */
export const NOT_ROOT_REASON =
  'needs root: it creates a system user (useradd, chpasswd) to log in with a password as someone other than root';

export const IS_ROOT = process.getuid?.() === 0;

export interface SystemUser {
  username: string;
  password: string;
  uid: number;
  gid: number;
  /** A remote folder owned by the user, outside the fixture's private folder (which only root can enter). */
  homeDir: string;
  /** Source keys for a password login as this user. */
  sourceKeys(extra?: Record<string, unknown>): Record<string, unknown>;
  remove(): Promise<void>;
}

/**
 * A throwaway system account with a known password (root only), so a scenario can
 * log in with a password, and as a user to whom permission bits apply.
 */
export async function createSystemUser(): Promise<SystemUser> {
  const username = `fsl-f-${randomBytes(3).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  execFileSync('useradd', ['-M', '-s', '/bin/sh', username], { stdio: 'pipe' });
  try {
    execFileSync('chpasswd', [], { input: `${username}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    const uid = Number(execFileSync('id', ['-u', username]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', username]).toString().trim());
    const homeDir = await mkdtemp(join(testTempRoot(), 'remote-user-'));
    await chmod(homeDir, 0o755);
    await chown(homeDir, uid, gid);
    return {
      username,
      password,
      uid,
      gid,
      homeDir,
      sourceKeys: (extra = {}) => ({
        username,
        private_key: undefined,
        passphrase_env: undefined,
        password_env: PASSWORD_ENV,
        ...extra,
      }),
      async remove() {
        await rm(homeDir, { recursive: true, force: true });
        execFileSync('userdel', [username], { stdio: 'pipe' });
      },
    };
  } catch (err) {
    execFileSync('userdel', [username], { stdio: 'pipe' });
    throw err;
  }
}
