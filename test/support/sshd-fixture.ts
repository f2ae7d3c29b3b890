/**
 * A real OpenSSH sshd for one test file: its own config, throwaway host and user keys
 * in a private temp folder, 127.0.0.1 on a free port. Works as root (CI) and as a
 * normal user. When sshd is missing, tests skip locally but fail loudly under CI=true.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { testTempRoot } from './temp-dir.js';

export const SSHD_PATH = '/usr/sbin/sshd';
export const SFTP_SERVER_PATH = '/usr/lib/openssh/sftp-server';

export function sshdAvailable(): boolean {
  return existsSync(SSHD_PATH);
}

/** Throws under CI when sshd is missing, so a CI run can never pass by skipping. */
export function requireSshdOrSkip(): boolean {
  if (sshdAvailable()) return true;
  if (process.env.CI === 'true') {
    throw new Error(
      `${SSHD_PATH} is missing and CI=true: install openssh-server (apt-get install -y openssh-server)`,
    );
  }
  return false;
}

export interface SshdFixtureOptions {
  /** Extra sshd_config lines, e.g. `PasswordAuthentication yes`. */
  extraConfig?: string[];
  /** Serve SFTP with the external sftp-server binary instead of internal-sftp. */
  externalSftpServer?: boolean;
  /** More host keys besides the ed25519 one, so a test can check clients that know only one of them. */
  extraHostKeyTypes?: ('ecdsa' | 'rsa')[];
}

export interface FixtureHostKey {
  /** `ed25519`, `ecdsa` or `rsa`, as given to ssh-keygen -t. */
  type: string;
  path: string;
  /** `ssh-ed25519 AAAA…`, `ecdsa-sha2-nistp256 AAAA…`, … */
  publicKey: string;
  fingerprint: string;
}

export interface SshdFixture {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** Private temp folder for the fixture's own files (config, keys). */
  readonly dir: string;
  /** A temp folder tree for the test's remote files (absolute path, served as is). */
  readonly rootDir: string;
  readonly clientKeyPath: string;
  readonly hostKeyPath: string;
  /** The host key's public line, `ssh-ed25519 AAAA…`. */
  readonly hostPublicKey: string;
  /** `SHA256:…` fingerprint of the host key, as `ssh-keygen -l` prints it. */
  readonly hostKeyFingerprint: string;
  /** Every host key sshd serves: the ed25519 one first, then `extraHostKeyTypes`. */
  readonly hostKeys: readonly FixtureHostKey[];
  /** A known_hosts file with a plain `[127.0.0.1]:port` entry for the host key. */
  readonly knownHostsPath: string;
  /** sshd's stderr so far, for diagnosing a failed test. */
  output(): string;
  /** Stops sshd (SIGTERM, then SIGKILL) but keeps its folders, so `start` can bring it back on the same port. */
  stopServer(): Promise<void>;
  /** Starts sshd again on the same port after `stopServer`. */
  startServer(): Promise<void>;
  /** Stops sshd and removes every folder the fixture made. */
  stop(): Promise<void>;
}

export async function startSshd(options: SshdFixtureOptions = {}): Promise<SshdFixture> {
  if (!requireSshdOrSkip()) throw new Error(`${SSHD_PATH} is missing: install openssh-server`);
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(join(testTempRoot(), 'sshd-'));
  await chmod(dir, 0o700);
  const rootDir = join(dir, 'root');
  mkdirSync(rootDir, { recursive: true });
  const hostKeyPath = join(dir, 'host_key');
  const clientKeyPath = join(dir, 'client_key');
  keygen(hostKeyPath, 'fixture-host');
  keygen(clientKeyPath, 'fixture-client');
  const hostPublicKey = await publicKeyLine(hostKeyPath);
  const hostKeys: FixtureHostKey[] = [
    {
      type: 'ed25519',
      path: hostKeyPath,
      publicKey: hostPublicKey,
      fingerprint: fingerprintOf(hostPublicKey),
    },
  ];
  for (const type of options.extraHostKeyTypes ?? []) {
    const path = join(dir, `host_key_${type}`);
    keygen(path, `fixture-host-${type}`, type);
    const publicKey = await publicKeyLine(path);
    hostKeys.push({ type, path, publicKey, fingerprint: fingerprintOf(publicKey) });
  }
  await writeFile(join(dir, 'authorized_keys'), await readFile(`${clientKeyPath}.pub`, 'utf8'), {
    mode: 0o600,
  });

  const username = userInfo().username;
  const port = await freePort();
  const knownHostsPath = join(dir, 'known_hosts');
  await writeFile(knownHostsPath, `[127.0.0.1]:${port} ${hostPublicKey}\n`, { mode: 0o600 });

  const configPath = join(dir, 'sshd_config');
  const sftp = options.externalSftpServer ? SFTP_SERVER_PATH : 'internal-sftp';
  const config = [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    ...hostKeys.map((key) => `HostKey ${key.path}`),
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PubkeyAuthentication yes',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'UseDNS no',
    // The fixture's files sit below /tmp, which StrictModes would refuse.
    'StrictModes no',
    'PermitRootLogin prohibit-password',
    'MaxStartups 200',
    'MaxSessions 200',
    'LogLevel INFO',
    `Subsystem sftp ${sftp}`,
    ...(options.extraConfig ?? []),
  ];
  if (!config.some((line) => line.startsWith('PasswordAuthentication')))
    config.push('PasswordAuthentication no');
  await writeFile(configPath, `${config.join('\n')}\n`, { mode: 0o600 });
  execFileSync(SSHD_PATH, ['-t', '-f', configPath], { stdio: 'pipe' });

  let child: ChildProcess | undefined;
  let output = '';

  async function startServer(): Promise<void> {
    if (child) return;
    output = '';
    const proc = spawn(SSHD_PATH, ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.on('exit', () => {
      if (child === proc) child = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sshd did not start within 10 s:\n${output}`)), 10_000);
      proc.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Server listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`sshd exited with ${code} before listening:\n${output}`));
      });
    });
  }

  async function stopServer(): Promise<void> {
    const proc = child;
    if (!proc?.pid) return;
    child = undefined;
    // Connection children call setsid() and outlive the listener: collect them first
    // so a "stopped" server really drops every session, as a crashed host would.
    const pids = [...descendantPids(proc.pid), proc.pid];
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    for (const pid of pids) killQuietly(pid, 'SIGKILL');
    await exited;
  }

  await startServer();
  return {
    host: '127.0.0.1',
    port,
    username,
    dir,
    rootDir,
    clientKeyPath,
    hostKeyPath,
    hostPublicKey,
    hostKeyFingerprint: fingerprintOf(hostPublicKey),
    hostKeys,
    knownHostsPath,
    output: () => output,
    stopServer,
    startServer,
    async stop() {
      await stopServer();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Every process below `rootPid`, read from /proc (Linux). */
export function descendantPids(rootPid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(name), Number(fields[1]));
    } catch {
      // The process ended while we read.
    }
  }
  const found: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const [pid, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found;
}

function keygen(path: string, comment: string, type = 'ed25519'): void {
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', comment, '-f', path], { stdio: 'pipe' });
}

async function publicKeyLine(privateKeyPath: string): Promise<string> {
  return (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
}

/** `SHA256:` + unpadded base64 of the key blob's sha256, as OpenSSH prints it. */
export function fingerprintOf(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.split(' ')[1] ?? '', 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
