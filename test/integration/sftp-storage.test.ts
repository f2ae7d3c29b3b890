/**
 * The SFTP storage against a real OpenSSH sshd: every way to log in, every way to
 * check the host key, and the faults a network and a server really produce (closed
 * port, dropped connections, a silent peer, a server killed mid-download), with a
 * counting TCP proxy in front of sshd to see how often a client really connected.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SftpConnectionConfig } from '../../src/config/config-types.js';
import { Secret } from '../../src/config/secret.js';
import { SyncError } from '../../src/errors/index.js';
import { createSftpStorage, type Storage } from '../../src/storage/index.js';
import { captureLogger } from '../support/capture-logger.js';
import { type CountingTcpProxy, startCountingTcpProxy } from '../support/counting-tcp-proxy.js';
import { fixtureConnection } from '../support/fixture-connection.js';
import { freePort, requireSshdOrSkip, type SshdFixture, startSshd } from '../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const run = requireSshdOrSkip();
const FAST_RETRY = { baseDelayMs: 100, maxDelayMs: 400 };

/** Storages made by a test, closed after it even when it fails. */
const opened: Storage[] = [];
function open(connection: SftpConnectionConfig, log = captureLogger().log): Storage {
  const storage = createSftpStorage({ connection, log, retryDelays: FAST_RETRY });
  opened.push(storage);
  return storage;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((storage) => storage.close()));
});

async function rejection(promise: Promise<unknown>): Promise<SyncError> {
  const err = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(err).toBeInstanceOf(SyncError);
  return err as SyncError;
}

function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

describe.skipIf(!run)('sftp storage', () => {
  let sshd: SshdFixture;
  let work: TempDir;
  let proxy: CountingTcpProxy;
  /** known_hosts naming the proxy's port with the sshd's host key. */
  let proxyKnownHosts: string;

  beforeAll(async () => {
    sshd = await startSshd({ extraHostKeyTypes: ['ecdsa'] });
    work = await makeTempDir('sftp-storage-');
    proxy = await startCountingTcpProxy(sshd.port);
    proxyKnownHosts = join(work.path, 'proxy_known_hosts');
    await writeFile(proxyKnownHosts, `[127.0.0.1]:${proxy.port} ${sshd.hostPublicKey}\n`);
  });
  afterAll(async () => {
    await proxy?.close();
    await sshd?.stop();
    await work?.remove();
  });
  afterEach(() => proxy.setMode('forward'));

  const viaProxy = (overrides: Partial<SftpConnectionConfig> = {}): SftpConnectionConfig =>
    fixtureConnection(sshd, {
      port: proxy.port,
      hostKey: { kind: 'known_hosts', knownHostsPath: proxyKnownHosts },
      ...overrides,
    });

  describe('authentication', () => {
    it('logs in with a private key and labels itself sftp://user@host:port', async () => {
      const storage = open(fixtureConnection(sshd));
      expect(storage.label).toBe(`sftp://${sshd.username}@127.0.0.1:${sshd.port}`);
      expect((await storage.stat(sshd.rootDir)).type).toBe('dir');
    });

    it('logs in with an encrypted key and its passphrase; a wrong passphrase is E_AUTH before any connection', async () => {
      const keyPath = join(work.path, 'encrypted_key');
      const passphrase = 'correct horse battery staple';
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', keyPath], { stdio: 'pipe' });
      await appendFile(join(sshd.dir, 'authorized_keys'), await readFile(`${keyPath}.pub`, 'utf8'));

      const captured = captureLogger();
      const good = open(
        fixtureConnection(sshd, {
          auth: { kind: 'key', privateKeyPath: keyPath, passphrase: new Secret(passphrase) },
        }),
        captured.log,
      );
      expect((await good.stat(sshd.rootDir)).type).toBe('dir');

      const before = proxy.connections;
      const wrong = open(
        viaProxy({
          retries: 3,
          auth: { kind: 'key', privateKeyPath: keyPath, passphrase: new Secret('not the passphrase') },
        }),
        captured.log,
      );
      const err = await rejection(wrong.stat(sshd.rootDir));
      expect(err.code).toBe('E_AUTH');
      expect(err.message).toContain('wrong passphrase');
      expect(proxy.connections).toBe(before);
      const missing = open(viaProxy({ auth: { kind: 'key', privateKeyPath: keyPath } }));
      expect((await rejection(missing.stat(sshd.rootDir))).message).toContain('no passphrase');
      expect(JSON.stringify(captured.lines())).not.toContain(passphrase);
      expect(err.message).not.toContain('not the passphrase');
    });

    it('refuses a key the server does not know with E_AUTH, without retrying', async () => {
      const keyPath = join(work.path, 'stranger_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath], { stdio: 'pipe' });
      const before = proxy.connections;
      const storage = open(viaProxy({ retries: 3, auth: { kind: 'key', privateKeyPath: keyPath } }));
      const err = await rejection(storage.stat(sshd.rootDir));
      expect(err.code).toBe('E_AUTH');
      expect(err.context).toMatchObject({ op: 'connect', host: `${sshd.username}@127.0.0.1:${proxy.port}` });
      expect(err.context.hint).toContain('authorized_keys');
      expect(proxy.connections - before).toBe(1);
    });

    it('logs in through ssh-agent', async () => {
      const socketPath = join(work.path, 'agent.sock');
      const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', socketPath], { stdio: 'ignore' });
      try {
        for (let waited = 0; !existsSync(socketPath) && waited < 5_000; waited += 50) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        execFileSync('ssh-add', ['-q', sshd.clientKeyPath], {
          env: { ...process.env, SSH_AUTH_SOCK: socketPath },
          stdio: 'pipe',
        });
        const storage = open(
          fixtureConnection(sshd, { auth: { kind: 'agent', agentSocketPath: socketPath } }),
        );
        expect((await storage.stat(sshd.rootDir)).type).toBe('dir');
        const noAgent = open(fixtureConnection(sshd, { auth: { kind: 'agent', agentSocketPath: '' } }));
        expect((await rejection(noAgent.stat(sshd.rootDir))).code).toBe('E_AUTH');
      } finally {
        agent.kill('SIGTERM');
      }
    });
  });

  describe('host keys', () => {
    const withKnownHosts = async (
      name: string,
      text: string,
      overrides: Partial<SftpConnectionConfig> = {},
    ) => {
      const knownHostsPath = join(work.path, name);
      await writeFile(knownHostsPath, text);
      return open(viaProxy({ hostKey: { kind: 'known_hosts', knownHostsPath }, ...overrides }));
    };
    const ed25519 = (): string => sshd.hostPublicKey;
    const ecdsa = (): string => sshd.hostKeys.find((key) => key.type === 'ecdsa')?.publicKey ?? '';

    it('accepts plain, hashed, and comma-listed [host]:port entries', async () => {
      const plain = await withKnownHosts('plain', `# comment\n\n[127.0.0.1]:${proxy.port} ${ed25519()}\n`);
      expect((await plain.stat(sshd.rootDir)).type).toBe('dir');

      const hashedPath = join(work.path, 'hashed');
      await writeFile(hashedPath, `[127.0.0.1]:${proxy.port} ${ed25519()}\n`);
      execFileSync('ssh-keygen', ['-q', '-H', '-f', hashedPath], { stdio: 'pipe' });
      const hashedText = await readFile(hashedPath, 'utf8');
      expect(hashedText).toMatch(/^\|1\|/);
      expect(hashedText).not.toContain('127.0.0.1');
      const hashed = open(viaProxy({ hostKey: { kind: 'known_hosts', knownHostsPath: hashedPath } }));
      expect((await hashed.stat(sshd.rootDir)).type).toBe('dir');

      const listed = await withKnownHosts(
        'listed',
        `other.example,[127.0.0.1]:${proxy.port},10.0.0.1 ${ed25519()}\n`,
      );
      expect((await listed.stat(sshd.rootDir)).type).toBe('dir');
    });

    it('asks the server for a key type the file knows when the host has several', async () => {
      // Without this, ssh2 asks for ed25519 first and the ecdsa-only entry would look like a mismatch.
      const ecdsaOnly = await withKnownHosts('ecdsa-only', `[127.0.0.1]:${proxy.port} ${ecdsa()}\n`);
      expect((await ecdsaOnly.stat(sshd.rootDir)).type).toBe('dir');
      const both = await withKnownHosts(
        'both',
        `[127.0.0.1]:${proxy.port} ${ecdsa()}\n[127.0.0.1]:${proxy.port} ${ed25519()}\n`,
      );
      expect((await both.stat(sshd.rootDir)).type).toBe('dir');
    });

    it('refuses a mismatching key with E_HOSTKEY naming both fingerprints, and never retries it', async () => {
      const otherKeyPath = join(work.path, 'other_host_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKeyPath], { stdio: 'pipe' });
      const otherLine = (await readFile(`${otherKeyPath}.pub`, 'utf8'))
        .trim()
        .split(' ')
        .slice(0, 2)
        .join(' ');
      const before = proxy.connections;
      const storage = await withKnownHosts('mismatch', `[127.0.0.1]:${proxy.port} ${otherLine}\n`, {
        retries: 3,
      });
      const err = await rejection(storage.stat(sshd.rootDir));
      expect(err.code).toBe('E_HOSTKEY');
      expect(err.message).toContain(sshd.hostKeyFingerprint);
      expect(err.message).toContain(fingerprintOfLine(otherLine));
      expect(proxy.connections - before).toBe(1);
    });

    it('refuses a key marked @revoked even when it is also listed as valid', async () => {
      const storage = await withKnownHosts(
        'revoked',
        `[127.0.0.1]:${proxy.port} ${ed25519()}\n@revoked [127.0.0.1]:${proxy.port} ${ed25519()}\n`,
      );
      const err = await rejection(storage.stat(sshd.rootDir));
      expect(err.code).toBe('E_HOSTKEY');
      expect(err.message).toContain('@revoked');
    });

    it('refuses an unknown host with E_HOSTKEY and says how to add it; @cert-authority lines do not count', async () => {
      const storage = await withKnownHosts(
        'unknown',
        `[127.0.0.1]:1 ${ed25519()}\n@cert-authority [127.0.0.1]:${proxy.port} ${ed25519()}\n`,
      );
      const err = await rejection(storage.stat(sshd.rootDir));
      expect(err.code).toBe('E_HOSTKEY');
      expect(err.message).toContain('unknown host');
      expect(err.context.hint).toContain(`ssh-keyscan -p ${proxy.port} 127.0.0.1 >>`);
      expect(err.context.hint).toContain(`host_key: "${sshd.hostKeyFingerprint}"`);
      const missingFile = open(
        viaProxy({ hostKey: { kind: 'known_hosts', knownHostsPath: join(work.path, 'nope') } }),
      );
      expect((await rejection(missingFile.stat(sshd.rootDir))).code).toBe('E_HOSTKEY');
    });

    it('checks pinned SHA256 fingerprints', async () => {
      const pinned = open(
        viaProxy({
          hostKey: { kind: 'fingerprint', fingerprints: ['SHA256:bm90IGl0', sshd.hostKeyFingerprint] },
        }),
      );
      expect((await pinned.stat(sshd.rootDir)).type).toBe('dir');
      const before = proxy.connections;
      const wrong = open(
        viaProxy({ retries: 3, hostKey: { kind: 'fingerprint', fingerprints: ['SHA256:bm90IGl0'] } }),
      );
      const err = await rejection(wrong.stat(sshd.rootDir));
      expect(err.code).toBe('E_HOSTKEY');
      expect(err.message).toContain(`presented ${sshd.hostKeyFingerprint}`);
      expect(err.message).toContain('SHA256:bm90IGl0');
      expect(proxy.connections - before).toBe(1);
    });

    it('with the insecure opt-out connects, and warns with host and fingerprint on every connect', async () => {
      const captured = captureLogger('info');
      const storage = open(viaProxy({ hostKey: { kind: 'insecure' } }), captured.log);
      await storage.stat(sshd.rootDir);
      await storage.close();
      await storage.stat(sshd.rootDir);
      const warnings = captured.warnings();
      expect(warnings).toHaveLength(2);
      for (const warning of warnings) {
        expect(warning).toMatchObject({
          host: `${sshd.username}@127.0.0.1:${proxy.port}`,
          fingerprint: sshd.hostKeyFingerprint,
        });
        expect(String(warning.msg)).toContain('NOT verified');
      }
    });
  });

  describe('faults', () => {
    it('gives up on a closed port with E_CONNECTION after its retries, within a bounded time', async () => {
      const captured = captureLogger();
      const storage = open(fixtureConnection(sshd, { port: await freePort(), retries: 2 }), captured.log);
      const startedAt = Date.now();
      const err = await rejection(storage.stat('/'));
      const elapsedMs = Date.now() - startedAt;
      expect(err.code).toBe('E_CONNECTION');
      expect(err.context.op).toBe('connect');
      const retries = captured.lines().filter((line) => String(line.msg).includes('retrying'));
      expect(retries).toHaveLength(2);
      // Two backoffs of at least half their ceiling (100 ms, 200 ms), and nothing close to a connect timeout.
      expect(elapsedMs).toBeGreaterThanOrEqual(150);
      expect(elapsedMs).toBeLessThan(2_000);
    });

    it('retries a server that drops connections, then gives up with E_CONNECTION', async () => {
      proxy.setMode('drop');
      const before = proxy.connections;
      const storage = open(viaProxy({ retries: 2 }));
      const err = await rejection(storage.stat(sshd.rootDir));
      expect(err.code).toBe('E_CONNECTION');
      expect(proxy.connections - before).toBe(3);
    });

    it('shares a few sessions between many concurrent callers and reuses them later', async () => {
      const dir = join(sshd.rootDir, 'pool');
      await mkdir(dir, { recursive: true });
      const content = randomBytes(2 * 1024 * 1024);
      await writeFile(join(dir, 'file.bin'), content);
      const before = proxy.connections;
      const storage = open(viaProxy({ connections: 2 }));
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, index) =>
          storage.download(join(dir, 'file.bin'), join(work.path, `pool-${index}`)),
        ),
      );
      for (const result of results) expect(result.sha256).toBe(sha256(content));
      expect(proxy.connections - before).toBe(2);
      for (let index = 0; index < 5; index += 1) await storage.stat(dir);
      expect(proxy.connections - before).toBe(2);
    });

    it('fails a download on a silent peer with E_TIMEOUT (idle deadline) and recovers on a new session', async () => {
      const content = randomBytes(16 * 1024 * 1024);
      const remotePath = join(sshd.rootDir, 'frozen.bin');
      await writeFile(remotePath, content);
      const storage = open(viaProxy({ operationTimeoutMs: 1_000, connections: 1 }));
      await storage.stat(remotePath);
      const before = proxy.connections;
      const localPath = join(work.path, 'frozen.part');
      const startedAt = Date.now();
      const err = await rejection(
        storage.download(remotePath, localPath, { onProgress: () => proxy.setMode('freeze') }),
      );
      const elapsedMs = Date.now() - startedAt;
      expect(err.code).toBe('E_TIMEOUT');
      expect(err.context).toMatchObject({ op: 'download', path: remotePath });
      expect(elapsedMs).toBeLessThan(3_000);
      expect(existsSync(localPath)).toBe(false);

      proxy.setMode('forward');
      const result = await storage.download(remotePath, localPath);
      expect(result.sha256).toBe(sha256(content));
      expect(proxy.connections - before).toBe(1);
    });

    it('times out a single request on a silent peer and replaces the session', async () => {
      const storage = open(viaProxy({ operationTimeoutMs: 800, connectTimeoutMs: 1_000, connections: 1 }));
      await storage.stat(sshd.rootDir);
      const before = proxy.connections;
      proxy.setMode('freeze');
      const startedAt = Date.now();
      const err = await rejection(storage.realPath(sshd.rootDir));
      expect(err.code).toBe('E_TIMEOUT');
      expect(err.context).toMatchObject({ op: 'realPath', path: sshd.rootDir });
      // Read-only: tried once more on a fresh session, which the frozen proxy starves too.
      expect(Date.now() - startedAt).toBeLessThan(800 + 1_000 + 1_000 + 1_000);
      proxy.setMode('forward');
      expect(await storage.realPath(sshd.rootDir)).toBe(sshd.rootDir);
      expect(proxy.connections - before).toBeGreaterThanOrEqual(1);
    });

    it('notices a silent idle connection through keepalive and uses a new one for the next write', async () => {
      const path = join(sshd.rootDir, 'keepalive.txt');
      await writeFile(path, 'x');
      const storage = open(viaProxy({ keepaliveIntervalMs: 200, connections: 1 }));
      await storage.stat(path);
      const before = proxy.connections;
      proxy.setMode('freeze');
      // Three unanswered keepalives (count max 3) at 200 ms and ssh2 drops the connection.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      proxy.setMode('forward');
      const startedAt = Date.now();
      // A write is never retried inside the storage: it succeeds only on a session known to be good.
      await storage.setTimes(path, Date.UTC(2021, 0, 1));
      expect(Date.now() - startedAt).toBeLessThan(2_000);
      expect(proxy.connections - before).toBe(1);
    });

    it('closes within its deadline even when the server no longer answers', async () => {
      const storage = createSftpStorage({
        connection: viaProxy({ operationTimeoutMs: 1_000, keepaliveIntervalMs: 60_000 }),
        log: captureLogger().log,
        retryDelays: FAST_RETRY,
      });
      await storage.stat(sshd.rootDir);
      proxy.setMode('freeze');
      const startedAt = Date.now();
      await storage.close();
      const elapsedMs = Date.now() - startedAt;
      expect(elapsedMs).toBeGreaterThanOrEqual(900);
      expect(elapsedMs).toBeLessThan(2_000);
    });

    it('fails a download promptly when the server is killed mid-transfer; the pool then recovers', async () => {
      const content = randomBytes(64 * 1024 * 1024);
      const remotePath = join(sshd.rootDir, 'killed.bin');
      await writeFile(remotePath, content);
      const storage = open(fixtureConnection(sshd, { operationTimeoutMs: 5_000, connections: 1 }));
      const localPath = join(work.path, 'killed.part');
      let stopping: Promise<void> | undefined;
      const startedAt = Date.now();
      const err = await rejection(
        storage.download(remotePath, localPath, {
          onProgress: () => {
            stopping ??= sshd.stopServer();
          },
        }),
      );
      const elapsedMs = Date.now() - startedAt;
      await stopping;
      expect(['E_CONNECTION', 'E_TIMEOUT']).toContain(err.code);
      expect(elapsedMs).toBeLessThan(5_000 + 1_000);
      expect(existsSync(localPath)).toBe(false);

      await sshd.startServer();
      const result = await storage.download(remotePath, localPath);
      expect(result.sha256).toBe(sha256(content));
    });
  });
});

function fingerprintOfLine(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.split(' ')[1] ?? '', 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
