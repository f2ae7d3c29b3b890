/**
 * Short reads (ssh2 #1166): a server that answers READ with fewer bytes than asked,
 * before the end of the file. OpenSSH never does, so this runs against a small
 * ssh2 server that does (test/support/short-read-sftp-server.ts). The download must
 * come out whole (falling back to sequential reads), and a file whose size differs
 * from what the server said at open must fail instead of being cut or padded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer as readAll } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SftpConnectionConfig } from '../../src/config/config-types.js';
import { Secret } from '../../src/config/secret.js';
import { SyncError } from '../../src/errors/index.js';
import { createSftpStorage, type Storage } from '../../src/storage/index.js';
import { captureLogger } from '../support/capture-logger.js';
import { type ShortReadServer, startShortReadSftpServer } from '../support/short-read-sftp-server.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const whole = randomBytes(1024 * 1024 + 333);
const growing = randomBytes(200_000);
const shrinking = randomBytes(200_000);

describe('sftp storage against a server that returns short reads', () => {
  let server: ShortReadServer;
  let work: TempDir;
  let storage: Storage;
  const captured = captureLogger('info');

  beforeAll(async () => {
    server = await startShortReadSftpServer({
      files: {
        '/whole.bin': whole,
        '/growing.bin': growing,
        '/shrinking.bin': shrinking,
        '/a.txt': Buffer.from('a'),
        '/b.txt': Buffer.from('b'),
      },
      maxReadBytes: 10_000,
      // As if the files changed between open and the last read.
      reportedSizeBytes: { '/growing.bin': 150_000, '/shrinking.bin': 250_000 },
    });
    work = await makeTempDir('short-read-');
    const connection: SftpConnectionConfig = {
      host: server.host,
      port: server.port,
      username: 'tester',
      auth: { kind: 'password', password: new Secret('any') },
      hostKey: { kind: 'fingerprint', fingerprints: [server.hostKeyFingerprint] },
      connections: 1,
      connectTimeoutMs: 5_000,
      operationTimeoutMs: 5_000,
      keepaliveIntervalMs: 5_000,
      retries: 0,
      readConcurrency: 16,
      chunkSizeBytes: 32 * 1024,
    };
    storage = createSftpStorage({ connection, log: captured.log });
  });
  afterAll(async () => {
    await storage?.close();
    await server?.close();
    await work?.remove();
  });

  it('downloads the whole file, re-reading what the short answers left out', async () => {
    const localPath = join(work.path, 'whole.part');
    const result = await storage.download('/whole.bin', localPath);
    expect(server.shortReads).toBeGreaterThan(0);
    expect(result.sizeBytes).toBe(whole.length);
    expect(result.sha256).toBe(createHash('sha256').update(whole).digest('hex'));
    expect((await readFile(localPath)).equals(whole)).toBe(true);
    const warning = captured.warnings().find((line) => String(line.msg).includes('one request at a time'));
    expect(warning).toMatchObject({ op: 'download', path: '/whole.bin' });
  });

  it('streams the whole file from an offset through openRead', async () => {
    const startOffset = 12_345;
    const read = await readAll(await storage.openRead('/whole.bin', { startOffset }));
    expect(read.equals(whole.subarray(startOffset))).toBe(true);
  });

  it('fails with E_CHANGED when the file holds more than its size at open, leaving no partial file', async () => {
    const localPath = join(work.path, 'growing.part');
    const err = await storage.download('/growing.bin', localPath).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(err).toBeInstanceOf(SyncError);
    expect((err as SyncError).code).toBe('E_CHANGED');
    expect((err as SyncError).message).toContain('grew');
    expect(existsSync(localPath)).toBe(false);
  });

  it('fails with E_CHANGED when the file ends before its size at open', async () => {
    const localPath = join(work.path, 'shrinking.part');
    const err = await storage.download('/shrinking.bin', localPath).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(err).toBeInstanceOf(SyncError);
    expect((err as SyncError).code).toBe('E_CHANGED');
    expect((err as SyncError).context).toMatchObject({ op: 'download', path: '/shrinking.bin' });
    expect(existsSync(localPath)).toBe(false);
  });

  it('falls back to plain SFTP v3 where the server offers no extensions', async () => {
    // No posix-rename@openssh.com: overwrite is remove-then-rename; without overwrite the target is kept.
    const err = await storage.rename('/a.txt', '/b.txt', { overwrite: false }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((err as SyncError).code).toBe('E_EXISTS');
    await storage.rename('/a.txt', '/b.txt', { overwrite: true });
    const read = await readAll(await storage.openRead('/b.txt'));
    expect(read.toString()).toBe('a');
    // No statvfs@openssh.com: the server cannot say.
    expect(await storage.freeSpace('/')).toBeNull();
  });
});
