/**
 * The embedded SFTP server driven by a real ssh2 Client over loopback: every operation,
 * confinement, authentication, the host key, every fault, and stop(). Every wait is
 * bounded, so a broken server fails a test instead of hanging it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  mkdir,
  readdir,
  readFile,
  readlink,
  realpath,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { Client, FileEntryWithStats, ParsedKey, PublicKeyAuthMethod, SFTPWrapper, Stats } from 'ssh2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type EmbeddedSftpFaultEvent,
  type EmbeddedSftpServer,
  type EmbeddedSftpServerOptions,
  startEmbeddedSftpServer,
} from '../../src/demo/embedded-sftp-server.js';
import { sleep, withDeadline } from '../../src/errors/index.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { generateEd25519KeyPair } from '../../src/demo/generate-key-pair.js';

const STATUS = ssh2.utils.sftp.STATUS_CODE;
const OP_TIMEOUT_MS = 5_000;
const clientKey = generateEd25519KeyPair();
const otherKey = generateEd25519KeyPair();

let temp: TempDir;
let rootDir: string;
let server: EmbeddedSftpServer | undefined;
const clients: Client[] = [];

beforeEach(async () => {
  temp = await makeTempDir('embedded-sftp-');
  rootDir = join(temp.path, 'root');
  await mkdir(rootDir);
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await server?.stop();
  server = undefined;
  await temp.remove();
});

async function start(extra: Partial<EmbeddedSftpServerOptions> = {}): Promise<EmbeddedSftpServer> {
  server = await startEmbeddedSftpServer({
    rootDir,
    username: 'demo',
    authorizedKey: clientKey.public,
    ...extra,
  });
  return server;
}

interface Connected {
  client: Client;
  sftp: SFTPWrapper;
  /** The host key blob the client saw. */
  hostKey: Buffer;
}

function connect(
  target: EmbeddedSftpServer,
  auth: { username?: string; privateKey?: string; password?: string } = { privateKey: clientKey.private },
): Promise<Connected> {
  const client = new ssh2.Client();
  clients.push(client);
  let hostKey: Buffer = Buffer.alloc(0);
  const ready = new Promise<Connected>((resolve, reject) => {
    // `on`, not `once`: after a refused login the socket may still report a reset.
    client.on('error', reject);
    client.once('ready', () => {
      client.sftp((err, sftp) => (err ? reject(err) : resolve({ client, sftp, hostKey })));
    });
    client.connect({
      host: target.host,
      port: target.port,
      username: auth.username ?? 'demo',
      ...(auth.privateKey ? { privateKey: auth.privateKey } : {}),
      ...(auth.password !== undefined ? { password: auth.password } : {}),
      readyTimeout: OP_TIMEOUT_MS,
      hostVerifier: (key: Buffer) => {
        hostKey = key;
        return true;
      },
    });
  });
  return withDeadline(ready, OP_TIMEOUT_MS, { op: 'connect' }, () => client.destroy());
}

/** Promisifies one callback-style SFTP call under a deadline. */
function call<T>(
  op: string,
  run: (done: (err: Error | null | undefined, value?: T) => void) => void,
): Promise<T> {
  const answer = new Promise<T>((resolve, reject) => {
    run((err, value) => (err ? reject(err) : resolve(value as T)));
  });
  return withDeadline(answer, OP_TIMEOUT_MS, { op });
}

const openFile = (sftp: SFTPWrapper, path: string, flags: 'r' | 'w' | 'wx' | 'a' | 'r+'): Promise<Buffer> =>
  call('open', (done) => sftp.open(path, flags, done));
const closeHandle = (sftp: SFTPWrapper, handle: Buffer): Promise<void> =>
  call('close', (done) => sftp.close(handle, done));
const statPath = (sftp: SFTPWrapper, path: string): Promise<Stats> =>
  call('stat', (done) => sftp.stat(path, done));
const lstatPath = (sftp: SFTPWrapper, path: string): Promise<Stats> =>
  call('lstat', (done) => sftp.lstat(path, done));
const realPath = (sftp: SFTPWrapper, path: string): Promise<string> =>
  call('realpath', (done) => sftp.realpath(path, done));

/** One raw READ: the bytes the server chose to send for it. */
function readOnce(sftp: SFTPWrapper, handle: Buffer, position: number, lengthBytes: number): Promise<Buffer> {
  const buffer = Buffer.alloc(lengthBytes);
  return call('read', (done) =>
    sftp.read(handle, buffer, 0, lengthBytes, position, (err, bytesRead) =>
      done(err, buffer.subarray(0, bytesRead ?? 0)),
    ),
  );
}

async function readWhole(sftp: SFTPWrapper, path: string): Promise<Buffer> {
  return call('readFile', (done) => sftp.readFile(path, done));
}

/** The SFTP status code of a failed call (ssh2 puts it on `err.code`). */
async function statusOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return (err as { code?: unknown }).code;
  }
  throw new Error('expected the SFTP call to fail');
}

/** True when the promise settles within `ms`; a stalled server leaves it pending. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const settled = promise.then(
    () => true,
    () => true,
  );
  const result = await Promise.race([settled, timeout]);
  clearTimeout(timer);
  return result;
}

function waitForClose(client: Client, ms = OP_TIMEOUT_MS): Promise<void> {
  return withDeadline(new Promise<void>((resolve) => client.once('close', () => resolve())), ms, {
    op: 'wait-close',
  });
}

type ReaddirCallback = (err: Error | undefined, list: FileEntryWithStats[]) => void;

/** One READDIR batch as sent, `.` and `..` included (@types/ssh2 lacks the options overload). */
function readdirFull(sftp: SFTPWrapper, handle: Buffer, done: ReaddirCallback): void {
  const readdir = sftp.readdir.bind(sftp) as unknown as (
    h: Buffer,
    o: { full: boolean },
    cb: ReaddirCallback,
  ) => void;
  readdir(handle, { full: true }, done);
}

function sampleBytes(sizeBytes: number): Buffer {
  const data = Buffer.alloc(sizeBytes);
  for (let i = 0; i < sizeBytes; i += 1) data[i] = (i * 31 + 7) % 251;
  return data;
}

describe('embedded SFTP server: operations', () => {
  it('writes a file, reads it back, and stats it three ways', async () => {
    const { sftp } = await connect(await start());
    const content = sampleBytes(100_000);
    await call('writeFile', (done) => sftp.writeFile('/data.bin', content, done));
    expect(await readFile(join(rootDir, 'data.bin'))).toEqual(content);
    expect(await readWhole(sftp, '/data.bin')).toEqual(content);

    const viaStat = await statPath(sftp, '/data.bin');
    const viaLstat = await lstatPath(sftp, 'data.bin');
    const handle = await openFile(sftp, '/data.bin', 'r');
    const viaFstat = await call<Stats>('fstat', (done) => sftp.fstat(handle, done));
    await closeHandle(sftp, handle);
    for (const stats of [viaStat, viaLstat, viaFstat]) {
      expect(stats.size).toBe(100_000);
      expect(stats.isFile()).toBe(true);
    }
    const local = await stat(join(rootDir, 'data.bin'));
    expect(viaStat.mtime).toBe(Math.floor(local.mtimeMs / 1000));
    expect((await statPath(sftp, '/')).isDirectory()).toBe(true);
  });

  it('reads to an EOF status and honours open flags (exclusive, append, missing file)', async () => {
    const { sftp } = await connect(await start());
    await writeFile(join(rootDir, 'small.txt'), 'hello');
    const handle = await openFile(sftp, '/small.txt', 'r');
    expect((await readOnce(sftp, handle, 0, 1000)).toString()).toBe('hello');
    // EOF: ssh2 turns the EOF status into zero bytes read.
    expect((await readOnce(sftp, handle, 5, 1000)).length).toBe(0);
    await closeHandle(sftp, handle);

    expect(await statusOf(openFile(sftp, '/small.txt', 'wx'))).toBe(STATUS.FAILURE);
    expect(await statusOf(openFile(sftp, '/missing.txt', 'r'))).toBe(STATUS.NO_SUCH_FILE);
    await call('appendFile', (done) => sftp.appendFile('/small.txt', ' world', done));
    expect(await readFile(join(rootDir, 'small.txt'), 'utf8')).toBe('hello world');
    await call('writeFile', (done) => sftp.writeFile('/small.txt', 'new', done));
    expect(await readFile(join(rootDir, 'small.txt'), 'utf8')).toBe('new');
    expect(await statusOf(openFile(sftp, '/', 'r'))).toBe(STATUS.FAILURE);
  });

  it('sets mtime and mode with setstat and fsetstat', async () => {
    const { sftp } = await connect(await start());
    await writeFile(join(rootDir, 'times.txt'), 'x');
    const mtimeS = 1_600_000_000;
    await call('setstat', (done) =>
      sftp.setstat('/times.txt', { atime: mtimeS, mtime: mtimeS, mode: 0o600 }, done),
    );
    let local = await stat(join(rootDir, 'times.txt'));
    expect(local.mtimeMs).toBe(mtimeS * 1000);
    expect(local.mode & 0o777).toBe(0o600);

    const handle = await openFile(sftp, '/times.txt', 'r+');
    await call('fsetstat', (done) =>
      sftp.fsetstat(handle, { atime: mtimeS + 60, mtime: mtimeS + 60, mode: 0o640 }, done),
    );
    await closeHandle(sftp, handle);
    local = await stat(join(rootDir, 'times.txt'));
    expect(local.mtimeMs).toBe((mtimeS + 60) * 1000);
    expect(local.mode & 0o777).toBe(0o640);
    expect((await statPath(sftp, '/times.txt')).mtime).toBe(mtimeS + 60);
  });

  it('lists a folder of 250 entries in several READDIR batches, with longnames and attrs', async () => {
    await mkdir(join(rootDir, 'many'));
    const names = Array.from({ length: 250 }, (_, i) => `file-${String(i).padStart(3, '0')}.csv`);
    await Promise.all(names.map((name) => writeFile(join(rootDir, 'many', name), name)));
    await utimes(join(rootDir, 'many', names[0]!), 1_500_000_000, 1_500_000_000);
    const { sftp } = await connect(await start());

    const handle = await call<Buffer>('opendir', (done) => sftp.opendir('/many', done));
    const batches: FileEntryWithStats[][] = [];
    for (;;) {
      const batch = await call<FileEntryWithStats[]>('readdir', (done) =>
        readdirFull(sftp, handle, done),
      ).catch((err: { code?: unknown }) => {
        if (err.code === STATUS.EOF) return undefined;
        throw err;
      });
      if (!batch) break;
      batches.push(batch);
      expect(batches.length).toBeLessThan(20);
    }
    await closeHandle(sftp, handle);

    expect(batches.length).toBeGreaterThanOrEqual(3);
    const listed = batches.flat();
    expect(listed.map((entry) => entry.filename).sort()).toEqual(['.', '..', ...names].sort());
    const first = listed.find((entry) => entry.filename === names[0])!;
    expect(first.attrs.size).toBe(names[0]!.length);
    expect(first.attrs.mtime).toBe(1_500_000_000);
    expect(first.attrs.isFile()).toBe(true);
    expect(first.longname).toMatch(/^-rw.* file-000\.csv$/);
    expect(server!.counters().readdirBatches).toBe(batches.length);

    // The path form that clients use: ssh2 loops over the batches and drops `.` and `..`.
    const all = await call<FileEntryWithStats[]>('readdir', (done) => sftp.readdir('/many', done));
    expect(all).toHaveLength(250);
  });

  it('renames (never onto an existing file), removes, makes and removes folders, resolves paths', async () => {
    const { sftp } = await connect(await start());
    await writeFile(join(rootDir, 'a.txt'), 'A');
    await writeFile(join(rootDir, 'b.txt'), 'B');

    expect(await statusOf(call('rename', (done) => sftp.rename('/a.txt', '/b.txt', done)))).toBe(
      STATUS.FAILURE,
    );
    expect(await readFile(join(rootDir, 'b.txt'), 'utf8')).toBe('B');
    await call('rename', (done) => sftp.rename('/a.txt', '/c.txt', done));
    expect(existsSync(join(rootDir, 'a.txt'))).toBe(false);
    expect(await readFile(join(rootDir, 'c.txt'), 'utf8')).toBe('A');

    await call('unlink', (done) => sftp.unlink('/b.txt', done));
    expect(existsSync(join(rootDir, 'b.txt'))).toBe(false);
    expect(await statusOf(call('unlink', (done) => sftp.unlink('/b.txt', done)))).toBe(STATUS.NO_SUCH_FILE);

    await call('mkdir', (done) => sftp.mkdir('/sub', done));
    expect((await stat(join(rootDir, 'sub'))).isDirectory()).toBe(true);
    expect(await statusOf(call('mkdir', (done) => sftp.mkdir('/sub', done)))).toBe(STATUS.FAILURE);
    await call('rename', (done) => sftp.rename('/c.txt', '/sub/c.txt', done));
    expect(await statusOf(call('rmdir', (done) => sftp.rmdir('/sub', done)))).toBe(STATUS.FAILURE);
    await call('unlink', (done) => sftp.unlink('/sub/c.txt', done));
    await call('rmdir', (done) => sftp.rmdir('/sub', done));
    expect(existsSync(join(rootDir, 'sub'))).toBe(false);

    expect(await realPath(sftp, '.')).toBe('/');
    expect(await realPath(sftp, '/x/../y/./z')).toBe('/y/z');
    await mkdir(join(rootDir, 'in'));
    await symlink('in', join(rootDir, 'alias'));
    expect(await realPath(sftp, 'alias')).toBe('/in');
  });
});

describe('embedded SFTP server: confinement', () => {
  it('never climbs above the root with .. or absolute paths', async () => {
    await mkdir(join(rootDir, 'etc'));
    await writeFile(join(rootDir, 'etc', 'passwd'), 'inside the root');
    const { sftp } = await connect(await start());

    expect((await readWhole(sftp, '/../../etc/passwd')).toString()).toBe('inside the root');
    expect((await readWhole(sftp, '../../../etc/passwd')).toString()).toBe('inside the root');
    expect(await realPath(sftp, '/../..')).toBe('/');
    expect((await lstatPath(sftp, '../..')).isDirectory()).toBe(true);
    await call('writeFile', (done) => sftp.writeFile('/../escape.txt', 'caught', done));
    expect(await readFile(join(rootDir, 'escape.txt'), 'utf8')).toBe('caught');
    expect(existsSync(join(temp.path, 'escape.txt'))).toBe(false);
    // The root itself cannot be removed or renamed away.
    expect(await statusOf(call('rmdir', (done) => sftp.rmdir('/..', done)))).toBe(STATUS.PERMISSION_DENIED);
  });

  it('does not follow links out of the root, and follows those that stay inside', async () => {
    const outside = join(temp.path, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'secret.txt'), 'secret');
    await writeFile(join(rootDir, 'real.txt'), 'real');
    await symlink('/etc/passwd', join(rootDir, 'passwd-link'));
    await symlink(outside, join(rootDir, 'outside-dir'));
    await symlink(join(outside, 'not-yet.txt'), join(rootDir, 'dangling'));
    await symlink('real.txt', join(rootDir, 'inner-link'));
    const { sftp } = await connect(await start());

    expect(await statusOf(openFile(sftp, '/passwd-link', 'r'))).toBe(STATUS.PERMISSION_DENIED);
    expect(await statusOf(statPath(sftp, '/passwd-link'))).toBe(STATUS.PERMISSION_DENIED);
    expect(await statusOf(call('readlink', (done) => sftp.readlink('/passwd-link', done)))).toBe(
      STATUS.PERMISSION_DENIED,
    );
    expect((await lstatPath(sftp, '/passwd-link')).isSymbolicLink()).toBe(true);

    expect(await statusOf(call('opendir', (done) => sftp.opendir('/outside-dir', done)))).toBe(
      STATUS.PERMISSION_DENIED,
    );
    expect(await statusOf(readWhole(sftp, '/outside-dir/secret.txt'))).toBe(STATUS.PERMISSION_DENIED);
    expect(await statusOf(lstatPath(sftp, '/outside-dir/secret.txt'))).toBe(STATUS.PERMISSION_DENIED);
    expect(await statusOf(call('unlink', (done) => sftp.unlink('/outside-dir/secret.txt', done)))).toBe(
      STATUS.PERMISSION_DENIED,
    );
    expect(existsSync(join(outside, 'secret.txt'))).toBe(true);

    // Writing through a dangling link would create its target outside the root.
    expect(await statusOf(openFile(sftp, '/dangling', 'w'))).toBe(STATUS.PERMISSION_DENIED);
    expect(existsSync(join(outside, 'not-yet.txt'))).toBe(false);

    expect((await readWhole(sftp, '/inner-link')).toString()).toBe('real');
    expect(await call('readlink', (done) => sftp.readlink('/inner-link', done))).toBe('/real.txt');
    // The listing shows links as links, never their targets' attributes.
    const listing = await call<FileEntryWithStats[]>('readdir', (done) => sftp.readdir('/', done));
    expect(listing.find((entry) => entry.filename === 'passwd-link')?.attrs.isSymbolicLink()).toBe(true);
  });
});

describe('embedded SFTP server: authentication and host key', () => {
  it('accepts the authorized key and refuses another key and another user', async () => {
    const target = await start();
    await connect(target);
    await expect(connect(target, { privateKey: otherKey.private })).rejects.toThrow(/authentication/i);
    await expect(connect(target, { username: 'root', privateKey: clientKey.private })).rejects.toThrow(
      /authentication/i,
    );
    await expect(connect(target, { password: 'anything' })).rejects.toThrow(/authentication/i);
  });

  it('verifies the signature: the authorized public key signed by another private key is refused', async () => {
    const target = await start();
    const forged = ssh2.utils.parseKey(clientKey.private) as ParsedKey;
    const signer = ssh2.utils.parseKey(otherKey.private) as ParsedKey;
    // Offers the authorized public key (so the server says "key OK") but cannot prove it holds it.
    forged.sign = (data, algo) => signer.sign(data, algo);
    const client = new ssh2.Client();
    clients.push(client);
    const outcome = new Promise<string>((resolve) => {
      client.on('error', (err) => resolve(err.message));
      client.once('ready', () => resolve('ready'));
      client.connect({
        host: target.host,
        port: target.port,
        username: 'demo',
        readyTimeout: OP_TIMEOUT_MS,
        authHandler: [{ type: 'publickey', username: 'demo', key: forged } as PublicKeyAuthMethod],
      });
    });
    expect(await withDeadline(outcome, OP_TIMEOUT_MS, { op: 'connect' })).toMatch(/authentication/i);
  });

  it('accepts the right password and refuses a wrong one', async () => {
    const target = await start({ authorizedKey: undefined, password: 's3cret' });
    await connect(target, { password: 's3cret' });
    await expect(connect(target, { password: 'wrong' })).rejects.toThrow(/authentication/i);
    await expect(connect(target, { privateKey: clientKey.private })).rejects.toThrow(/authentication/i);
  });

  it('reports the host key fingerprint the client sees, as ssh-keygen prints it', async () => {
    const target = await start();
    const { hostKey } = await connect(target);
    const seen = `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
    expect(target.hostKeyFingerprint).toBe(seen);
    expect(target.hostPublicKey).toBe(`ssh-ed25519 ${hostKey.toString('base64')}`);
    const pubPath = join(temp.path, 'host.pub');
    await writeFile(pubPath, `${target.hostPublicKey}\n`);
    expect(execFileSync('ssh-keygen', ['-l', '-f', pubPath], { encoding: 'utf8' })).toContain(
      target.hostKeyFingerprint,
    );
  });

  it('uses a given host key, and two servers without one get different keys', async () => {
    const given = generateEd25519KeyPair();
    const target = await start({ hostKey: given.private });
    expect(target.hostPublicKey).toBe(given.public.split(' ').slice(0, 2).join(' '));
    const other = await startEmbeddedSftpServer({ rootDir, username: 'demo', password: 'x' });
    const third = await startEmbeddedSftpServer({ rootDir, username: 'demo', password: 'x' });
    try {
      expect(other.hostKeyFingerprint).not.toBe(third.hostKeyFingerprint);
    } finally {
      await Promise.all([other.stop(), third.stop()]);
    }
  });

  it('refuses to start without any way to authenticate, or on a missing root', async () => {
    await expect(startEmbeddedSftpServer({ rootDir, username: 'demo' })).rejects.toMatchObject({
      code: 'E_CONFIG',
    });
    await expect(
      startEmbeddedSftpServer({ rootDir: join(rootDir, 'nope'), username: 'demo', password: 'x' }),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('embedded SFTP server: faults', () => {
  const fileSizeBytes = 200_000;

  beforeEach(async () => {
    await writeFile(join(rootDir, 'big.bin'), sampleBytes(fileSizeBytes));
  });

  it('shortReads: a raw read gets at most K bytes though more were asked and are there', async () => {
    const target = await start({ faults: { shortReads: 1000 } });
    const { sftp } = await connect(target);
    const handle = await openFile(sftp, '/big.bin', 'r');
    const chunk = await readOnce(sftp, handle, 0, 16_000);
    expect(chunk.length).toBe(1000);
    expect(chunk).toEqual(sampleBytes(1000));
    expect(target.counters().shortReads).toBe(1);

    target.setFaults({});
    expect((await readOnce(sftp, handle, 0, 16_000)).length).toBe(16_000);
    await closeHandle(sftp, handle);
  });

  it('stallAfterReads: after N reads no request is answered, yet the connection stays open', async () => {
    const events: EmbeddedSftpFaultEvent[] = [];
    const target = await start({ faults: { stallAfterReads: 2 }, onFault: (event) => events.push(event) });
    const { sftp } = await connect(target);
    const handle = await openFile(sftp, '/big.bin', 'r');
    await readOnce(sftp, handle, 0, 1000);
    await readOnce(sftp, handle, 1000, 1000);
    expect(await settlesWithin(readOnce(sftp, handle, 2000, 1000), 400)).toBe(false);
    expect(await settlesWithin(statPath(sftp, '/big.bin'), 200)).toBe(false);
    expect(target.clientConnections()).toBe(1);
    expect(target.counters()).toMatchObject({ stalledConnections: 1, readsServed: 2 });
    expect(events).toEqual([{ fault: 'stallAfterReads', connectionId: 1 }]);

    // A new connection has its own count: a fetcher's retry on a fresh connection gets answers.
    const fresh = await connect(target);
    expect((await statPath(fresh.sftp, '/big.bin')).size).toBe(fileSizeBytes);
  });

  it('failReadNumber: the Nth read answers FAILURE, the others data; setFaults restarts the count', async () => {
    const target = await start({ faults: { failReadNumber: 2 } });
    const { sftp } = await connect(target);
    const handle = await openFile(sftp, '/big.bin', 'r');
    expect((await readOnce(sftp, handle, 0, 1000)).length).toBe(1000);
    expect(await statusOf(readOnce(sftp, handle, 1000, 1000))).toBe(STATUS.FAILURE);
    expect((await readOnce(sftp, handle, 1000, 1000)).length).toBe(1000);
    target.setFaults({ failReadNumber: 1 });
    expect(await statusOf(readOnce(sftp, handle, 2000, 1000))).toBe(STATUS.FAILURE);
    expect(target.counters()).toMatchObject({ readsFailed: 2, readsServed: 2, readRequests: 4 });
  });

  it('dropAfterBytes: the connection is cut once N bytes of file data went out', async () => {
    const target = await start({ faults: { dropAfterBytes: 50_000 } });
    const { client, sftp } = await connect(target);
    const closed = waitForClose(client);
    const handle = await openFile(sftp, '/big.bin', 'r');
    let receivedBytes = 0;
    let failure: unknown;
    for (let position = 0; position < fileSizeBytes; position += 16_000) {
      try {
        receivedBytes += (await readOnce(sftp, handle, position, 16_000)).length;
      } catch (err) {
        failure = err;
        break;
      }
    }
    await closed;
    expect(failure).toBeDefined();
    // Cut right after the reply that crossed 50,000 bytes; that reply may or may not arrive first.
    expect([48_000, 64_000]).toContain(receivedBytes);
    expect(target.counters()).toMatchObject({ droppedConnections: 1, bytesSent: 64_000 });
  });

  it('failPaths: OPEN of a listed path, or one a predicate picks, is denied', async () => {
    await writeFile(join(rootDir, 'ok.txt'), 'ok');
    const target = await start({ faults: { failPaths: ['/big.bin'] } });
    const { sftp } = await connect(target);
    expect(await statusOf(openFile(sftp, 'big.bin', 'r'))).toBe(STATUS.PERMISSION_DENIED);
    expect((await readWhole(sftp, '/ok.txt')).toString()).toBe('ok');
    target.setFaults({ failPaths: (path) => path.endsWith('.txt') });
    expect(await statusOf(openFile(sftp, '/ok.txt', 'r'))).toBe(STATUS.PERMISSION_DENIED);
    expect((await readWhole(sftp, '/big.bin')).length).toBe(fileSizeBytes);
    expect(target.counters().opensDenied).toBe(2);
  });

  it('readDelayMs: each read reply waits, and clearing the fault at run time makes reads prompt', async () => {
    const target = await start({ faults: { readDelayMs: 500 } });
    const { sftp } = await connect(target);
    const handle = await openFile(sftp, '/big.bin', 'r');
    let startedMs = performance.now();
    await readOnce(sftp, handle, 0, 1000);
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(490);
    target.setFaults({});
    startedMs = performance.now();
    await readOnce(sftp, handle, 0, 1000);
    expect(performance.now() - startedMs).toBeLessThan(400);
  });

  it('closes every open handle when the client disconnects', async () => {
    await writeFile(join(rootDir, 'held.txt'), 'held');
    const heldPath = join(await realpath(rootDir), 'held.txt');
    const openDescriptors = async (): Promise<number> => {
      const fds = await readdir('/proc/self/fd');
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((target) => target === heldPath).length;
    };
    const target = await start();
    const { client, sftp } = await connect(target);
    for (let i = 0; i < 5; i += 1) await openFile(sftp, '/held.txt', 'r');
    await call('opendir', (done) => sftp.opendir('/', done));
    expect(await openDescriptors()).toBe(5);
    const closed = waitForClose(client);
    client.end();
    await closed;
    const deadlineMs = Date.now() + OP_TIMEOUT_MS;
    while ((await openDescriptors()) > 0 && Date.now() < deadlineMs) await sleep(20);
    expect(await openDescriptors()).toBe(0);
  });

  it('stop() ends connected clients and closes the listener', async () => {
    const target = await start();
    const first = await connect(target);
    const second = await connect(target);
    expect(target.clientConnections()).toBe(2);
    const closed = Promise.all([waitForClose(first.client), waitForClose(second.client)]);
    await target.stop();
    await closed;
    expect(target.clientConnections()).toBe(0);
    await expect(connect(target)).rejects.toThrow(/ECONNREFUSED/);
  });
});
