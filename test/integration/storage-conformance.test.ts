/**
 * One suite, two storages: everything here must hold for the local folder storage
 * and for the SFTP storage against a real OpenSSH sshd. The sshd serves absolute
 * paths of this machine, so both storages see the same paths and the test prepares
 * files with node:fs directly.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer as readAll } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncError } from '../../src/errors/index.js';
import {
  createLocalStorage,
  createSftpStorage,
  type Storage,
  type StorageEntry,
} from '../../src/storage/index.js';
import { captureLogger } from '../support/capture-logger.js';
import { fixtureConnection } from '../support/fixture-connection.js';
import { requireSshdOrSkip, type SshdFixture, startSshd } from '../support/sshd-fixture.js';
import { makeTempDir } from '../support/temp-dir.js';

interface ConformanceTarget {
  storage: Storage;
  /** A folder the suite may fill; the same path for the storage and for node:fs. */
  rootDir: string;
  /** `host` every error must carry (SFTP), or undefined (local). */
  expectedHost: string | undefined;
  teardown(): Promise<void>;
}

storageConformance('local storage', async () => {
  const temp = await makeTempDir('conformance-local-');
  return {
    storage: createLocalStorage(),
    rootDir: temp.path,
    expectedHost: undefined,
    teardown: () => temp.remove(),
  };
});

const sshdAvailable = requireSshdOrSkip();
storageConformance(
  'sftp storage',
  async () => {
    const sshd: SshdFixture = await startSshd();
    const { log } = captureLogger('warn');
    const storage = createSftpStorage({ connection: fixtureConnection(sshd), log });
    return {
      storage,
      rootDir: sshd.rootDir,
      expectedHost: `${sshd.username}@${sshd.host}:${sshd.port}`,
      teardown: () => sshd.stop(),
    };
  },
  !sshdAvailable,
);

function storageConformance(name: string, setup: () => Promise<ConformanceTarget>, skip = false): void {
  describe.skipIf(skip)(`storage conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let storage: Storage;

    beforeAll(async () => {
      target = await setup();
      storage = target.storage;
    });
    afterAll(async () => {
      await storage?.close();
      await storage?.close();
      await target?.teardown();
    });

    const freshDir = (): Promise<string> => mkdtemp(join(target.rootDir, 'case-'));
    const listAll = async (dirPath: string, options: Parameters<Storage['list']>[1] = {}) => {
      const entries: StorageEntry[] = [];
      for await (const entry of storage.list(dirPath, options)) entries.push(entry);
      return entries;
    };
    const expectSyncError = async (
      promise: Promise<unknown>,
      code: string,
      context: Record<string, unknown>,
    ) => {
      const err = await promise.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(err).toBeInstanceOf(SyncError);
      const syncError = err as SyncError;
      expect(syncError.code).toBe(code);
      expect(syncError.context).toMatchObject(context);
      if (target.expectedHost) expect(syncError.context.host).toBe(target.expectedHost);
      return syncError;
    };

    it('lists one folder with types, sizes and awkward names, never . or ..', async () => {
      const dir = await freshDir();
      const names = ['with space.txt', 'été-日本.txt', '-leading-dash.txt', 'new\nline.txt'];
      for (const [index, fileName] of names.entries())
        await writeFile(join(dir, fileName), 'x'.repeat(index + 1));
      await mkdir(join(dir, 'sub'));
      await writeFile(join(dir, 'sub', 'inner.txt'), 'inner');

      const entries = await listAll(dir);
      expect(entries.map((entry) => entry.name).sort()).toEqual([...names, 'sub'].sort());
      for (const [index, fileName] of names.entries()) {
        const entry = entries.find((candidate) => candidate.name === fileName);
        expect(entry).toMatchObject({ relPath: fileName, type: 'file', sizeBytes: index + 1 });
        expect(entry?.mode && entry.mode & 0o170000).toBe(0o100000);
        expect(entry?.mtimeMs).toBeGreaterThan(Date.now() - 120_000);
      }
      expect(entries.find((entry) => entry.name === 'sub')?.type).toBe('dir');
      // The new-line name is usable as reported.
      const stats = await storage.stat(join(dir, 'new\nline.txt'));
      expect(stats.sizeBytes).toBe(4);
    });

    it('lists recursively, folders before their contents, honouring skipDir, links as links', async () => {
      const dir = await freshDir();
      await writeFile(join(dir, 'top.txt'), 'top');
      await mkdir(join(dir, 'a', 'b'), { recursive: true });
      await writeFile(join(dir, 'a', 'one.txt'), '1');
      await writeFile(join(dir, 'a', 'b', 'two.txt'), '22');
      await mkdir(join(dir, 'skipped'));
      await writeFile(join(dir, 'skipped', 'hidden.txt'), 'h');
      await symlink('top.txt', join(dir, 'link-to-top'));
      await symlink('a', join(dir, 'link-to-a'));

      const entries = await listAll(dir, { recursive: true, skipDir: (relPath) => relPath === 'skipped' });
      const relPaths = entries.map((entry) => entry.relPath);
      expect([...relPaths].sort()).toEqual(
        ['a', 'a/b', 'a/b/two.txt', 'a/one.txt', 'link-to-a', 'link-to-top', 'skipped', 'top.txt'].sort(),
      );
      expect(relPaths.indexOf('a')).toBeLessThan(relPaths.indexOf('a/one.txt'));
      expect(relPaths.indexOf('a/b')).toBeLessThan(relPaths.indexOf('a/b/two.txt'));
      const link = entries.find((entry) => entry.relPath === 'link-to-top');
      expect(link).toMatchObject({ type: 'link', linkTarget: 'top.txt' });
      // A link to a folder is not followed.
      expect(entries.find((entry) => entry.relPath === 'link-to-a')).toMatchObject({
        type: 'link',
        linkTarget: 'a',
      });
      expect(relPaths.some((relPath) => relPath.startsWith('link-to-a/'))).toBe(false);
    });

    it('reports a subfolder that cannot be listed through onError and goes on; without onError it rejects', async () => {
      const dir = await freshDir();
      for (const folder of ['gone', 'kept']) {
        await mkdir(join(dir, folder));
        await writeFile(join(dir, folder, 'file.txt'), folder);
      }
      const failures: { code: string; relPath: string }[] = [];
      const seen: string[] = [];
      for await (const entry of storage.list(dir, {
        recursive: true,
        onError: (error, relPath) => failures.push({ code: (error as SyncError).code, relPath }),
      })) {
        seen.push(entry.relPath);
        // Subfolders are opened only after their parent's entries: removing it now makes it fail.
        if (entry.relPath === 'gone') await rm(join(dir, 'gone'), { recursive: true });
      }
      expect(failures).toEqual([{ code: 'E_NOT_FOUND', relPath: 'gone' }]);
      expect(seen).toContain('kept/file.txt');

      await mkdir(join(dir, 'gone'));
      const strict = (async () => {
        for await (const entry of storage.list(dir, { recursive: true })) {
          if (entry.relPath === 'gone') await rm(join(dir, 'gone'), { recursive: true });
        }
      })();
      await expectSyncError(strict, 'E_NOT_FOUND', { op: 'list' });
    });

    it('reports a name that is not UTF-8 with U+FFFD in place of the bad bytes', async () => {
      const dir = await freshDir();
      await writeFile(
        Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]),
        'x',
      );
      const entries = await listAll(dir);
      expect(entries.map((entry) => entry.name)).toEqual(['bad-\uFFFD\uFFFD.txt']);
      expect(entries[0]?.type).toBe('file');
    });

    it('streams a folder of 10,000 entries', async () => {
      const dir = await freshDir();
      const count = 10_000;
      for (let start = 0; start < count; start += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, count - start) }, (_, offset) =>
            writeFile(join(dir, `f-${String(start + offset).padStart(5, '0')}`), ''),
          ),
        );
      }
      const names = new Set<string>();
      for await (const entry of storage.list(dir)) names.add(entry.name);
      expect(names.size).toBe(count);
      expect(names.has('f-00000')).toBe(true);
      expect(names.has('f-09999')).toBe(true);
    });

    it('rejects a listing of a missing folder with E_NOT_FOUND', async () => {
      const dir = await freshDir();
      await expectSyncError(listAll(join(dir, 'missing')), 'E_NOT_FOUND', { op: 'list' });
    });

    it('stats files, folders and links (followed unless asked not to)', async () => {
      const dir = await freshDir();
      await writeFile(join(dir, 'file.txt'), 'hello');
      await symlink('file.txt', join(dir, 'link'));
      expect(await storage.stat(join(dir, 'file.txt'))).toMatchObject({ type: 'file', sizeBytes: 5 });
      expect((await storage.stat(dir)).type).toBe('dir');
      expect((await storage.stat(join(dir, 'link'))).type).toBe('file');
      expect((await storage.stat(join(dir, 'link'), { followLinks: false })).type).toBe('link');
      expect(await storage.readLink(join(dir, 'link'))).toBe('file.txt');
      expect(await storage.realPath(join(dir, 'link'))).toBe(await realpath(join(dir, 'file.txt')));
      const missing = join(dir, 'missing');
      await expectSyncError(storage.stat(missing), 'E_NOT_FOUND', { op: 'stat', path: missing });
    });

    it('opens a read stream from an offset', async () => {
      const dir = await freshDir();
      await writeFile(join(dir, 'small.txt'), 'hello world');
      expect(
        (await readAll(await storage.openRead(join(dir, 'small.txt'), { startOffset: 6 }))).toString(),
      ).toBe('world');
      const content = randomBytes(3 * 1024 * 1024 + 17);
      await writeFile(join(dir, 'big.bin'), content);
      const startOffset = 1024 * 1024 + 7;
      const read = await readAll(await storage.openRead(join(dir, 'big.bin'), { startOffset }));
      expect(read.equals(content.subarray(startOffset))).toBe(true);
      expect((await readAll(await storage.openRead(join(dir, 'big.bin')))).equals(content)).toBe(true);
      await expectSyncError(storage.openRead(join(dir, 'missing')), 'E_NOT_FOUND', { op: 'openRead' });
    });

    it('downloads with the sha256 of the bytes, progress and the requested mode', async () => {
      const dir = await freshDir();
      const local = await makeTempDir('conformance-dl-');
      try {
        for (const sizeBytes of [0, 1, 100_000, 8 * 1024 * 1024 + 123]) {
          const content = randomBytes(sizeBytes);
          const srcPath = join(dir, `src-${sizeBytes}.bin`);
          await writeFile(srcPath, content);
          const localPath = join(local.path, `.dst-${sizeBytes}.part`);
          const progress: number[] = [];
          const result = await storage.download(srcPath, localPath, {
            fileMode: 0o640,
            fsync: true,
            onProgress: (bytesDone, total) => {
              expect(total).toBe(sizeBytes);
              progress.push(bytesDone);
            },
          });
          expect(result.sizeBytes).toBe(sizeBytes);
          expect(result.sha256).toBe(sha256(content));
          expect((await readFile(localPath)).equals(content)).toBe(true);
          expect((await stat(localPath)).mode & 0o777).toBe(0o640);
          if (sizeBytes > 0) expect(progress.at(-1)).toBe(sizeBytes);
        }
        const missing = join(dir, 'missing.bin');
        const localPath = join(local.path, 'never.part');
        await expectSyncError(storage.download(missing, localPath), 'E_NOT_FOUND', {
          op: 'download',
          path: missing,
        });
        expect(existsSync(localPath)).toBe(false);
        const aborted = AbortSignal.abort();
        await expectSyncError(
          storage.download(join(dir, 'src-1.bin'), localPath, { signal: aborted }),
          'E_ABORTED',
          {},
        );
      } finally {
        await local.remove();
      }
    });

    it('stops a download when its signal aborts, leaving no file, and works on afterwards', async () => {
      const dir = await freshDir();
      const local = await makeTempDir('conformance-abort-');
      try {
        const content = randomBytes(24 * 1024 * 1024);
        const srcPath = join(dir, 'big.bin');
        await writeFile(srcPath, content);
        const controller = new AbortController();
        const localPath = join(local.path, '.big.part');
        await expectSyncError(
          storage.download(srcPath, localPath, {
            onProgress: () => controller.abort(),
            signal: controller.signal,
          }),
          'E_ABORTED',
          {},
        );
        expect(existsSync(localPath)).toBe(false);
        const result = await storage.download(srcPath, localPath);
        expect(result.sha256).toBe(sha256(content));
        // A big download into a folder that does not exist fails on the local side, and says so.
        const nowhere = join(local.path, 'missing', 'big.part');
        await expectSyncError(storage.download(srcPath, nowhere), 'E_NOT_FOUND', {
          op: 'download',
          path: nowhere,
        });
      } finally {
        await local.remove();
      }
    });

    it('uploads with the sha256 of the bytes and the requested mode', async () => {
      const dir = await freshDir();
      const local = await makeTempDir('conformance-ul-');
      try {
        for (const sizeBytes of [0, 5, 6 * 1024 * 1024 + 1]) {
          const content = randomBytes(sizeBytes);
          const localPath = join(local.path, `src-${sizeBytes}.bin`);
          await writeFile(localPath, content);
          const dstPath = join(dir, `.dst-${sizeBytes}.part`);
          const result = await storage.upload(localPath, dstPath, { fileMode: 0o640, fsync: true });
          expect(result).toMatchObject({ sizeBytes, sha256: sha256(content) });
          expect((await readFile(dstPath)).equals(content)).toBe(true);
          expect((await stat(dstPath)).mode & 0o777).toBe(0o640);
        }
        await expectSyncError(
          storage.upload(join(local.path, 'src-5.bin'), join(dir, 'no-such-folder', 'x')),
          'E_NOT_FOUND',
          { op: 'upload' },
        );
      } finally {
        await local.remove();
      }
    });

    it('renames: never over an existing file without overwrite, atomically over it with overwrite', async () => {
      const dir = await freshDir();
      const from = join(dir, 'from.txt');
      const to = join(dir, 'to.txt');
      await writeFile(from, 'new');
      await writeFile(to, 'old');
      await expectSyncError(storage.rename(from, to, { overwrite: false }), 'E_EXISTS', { op: 'rename' });
      expect(await readFile(from, 'utf8')).toBe('new');
      expect(await readFile(to, 'utf8')).toBe('old');

      await storage.rename(from, to, { overwrite: true });
      expect(await readFile(to, 'utf8')).toBe('new');
      expect(existsSync(from)).toBe(false);

      const moved = join(dir, 'moved.txt');
      await storage.rename(to, moved, { overwrite: false });
      expect(await readFile(moved, 'utf8')).toBe('new');
      expect(existsSync(to)).toBe(false);

      await mkdir(join(dir, 'folder'));
      await storage.rename(join(dir, 'folder'), join(dir, 'folder2'), { overwrite: false });
      expect((await stat(join(dir, 'folder2'))).isDirectory()).toBe(true);
      await expectSyncError(
        storage.rename(join(dir, 'missing'), join(dir, 'x'), { overwrite: false }),
        'E_NOT_FOUND',
        {
          op: 'rename',
        },
      );
    });

    it('removes files and links, and says E_NOT_FOUND when already gone', async () => {
      const dir = await freshDir();
      await writeFile(join(dir, 'file.txt'), 'x');
      await symlink('file.txt', join(dir, 'link'));
      await storage.remove(join(dir, 'link'));
      expect(existsSync(join(dir, 'file.txt'))).toBe(true);
      await storage.remove(join(dir, 'file.txt'));
      expect(existsSync(join(dir, 'file.txt'))).toBe(false);
      await expectSyncError(storage.remove(join(dir, 'file.txt')), 'E_NOT_FOUND', {
        op: 'remove',
        path: join(dir, 'file.txt'),
      });
    });

    it('removes empty folders only', async () => {
      const dir = await freshDir();
      await mkdir(join(dir, 'empty'));
      await mkdir(join(dir, 'full'));
      await writeFile(join(dir, 'full', 'x'), 'x');
      await storage.removeDir(join(dir, 'empty'));
      expect(existsSync(join(dir, 'empty'))).toBe(false);
      await expectSyncError(storage.removeDir(join(dir, 'full')), 'E_EXISTS', { op: 'removeDir' });
      expect(existsSync(join(dir, 'full', 'x'))).toBe(true);
    });

    it('creates folders with their parents, tolerates existing ones, refuses a file in the way', async () => {
      const dir = await freshDir();
      const deep = join(dir, 'x', 'y', 'z');
      await storage.mkdirp(deep);
      expect((await stat(deep)).isDirectory()).toBe(true);
      await storage.mkdirp(deep);
      await Promise.all([storage.mkdirp(join(deep, 'r', 's')), storage.mkdirp(join(deep, 'r', 't'))]);
      expect((await stat(join(deep, 'r', 't'))).isDirectory()).toBe(true);
      await writeFile(join(dir, 'file'), 'x');
      await expectSyncError(storage.mkdirp(join(dir, 'file')), 'E_EXISTS', { op: 'mkdirp' });
    });

    it('sets modification times and modes', async () => {
      const dir = await freshDir();
      const path = join(dir, 'file.txt');
      await writeFile(path, 'x');
      const mtimeMs = Date.UTC(2020, 0, 2, 3, 4, 5);
      await storage.setTimes(path, mtimeMs);
      expect((await stat(path)).mtimeMs).toBe(mtimeMs);
      expect((await storage.stat(path)).mtimeMs).toBe(mtimeMs);
      await storage.setMode(path, 0o600);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect((await storage.stat(path)).mode & 0o777).toBe(0o600);
    });

    it('knows the free space, also below a folder that does not exist yet', async () => {
      const dir = await freshDir();
      const free = await storage.freeSpace(dir);
      expect(free).not.toBeNull();
      expect(free).toBeGreaterThan(0);
      expect(await storage.freeSpace(join(dir, 'not', 'yet'))).toBeGreaterThan(0);
    });
  });
}

function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}
