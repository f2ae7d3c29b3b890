/**
 * copyFile on temp folders through the local Storage (and the in-memory one where
 * the SFTP behaviour matters): conflict policies, including a file that appears at
 * the target while ours is being written, keep-both naming, an identical file
 * already in place, hardlinks, and verification failures.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CopyConflictPolicy, type CopyFileInput, copyFile } from '../../../src/actions/copy-file.js';
import { numberedName, withStemSuffix } from '../../../src/actions/numbered-name.js';
import { SyncError } from '../../../src/errors/index.js';
import { createLocalStorage } from '../../../src/storage/index.js';
import type { Storage } from '../../../src/storage/storage.js';
import { MemoryStorage } from '../../support/memory-storage.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const SRC_MTIME_MS = Date.UTC(2026, 2, 1, 12, 0, 0);
const THEIRS_MTIME_MS = Date.UTC(2025, 5, 1, 8, 0, 0);

let temp: TempDir;
let local: Storage;

beforeEach(async () => {
  temp = await makeTempDir('copy-file-');
  local = createLocalStorage();
});
afterEach(async () => {
  await temp?.remove();
});

async function writeAt(path: string, content: string, mtimeMs: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
}

async function source(
  content = 'ours\n',
  mtimeMs = SRC_MTIME_MS,
): Promise<CopyFileInput['src'] & { path: string }> {
  const path = join(temp.path, 'incoming', 'report.csv');
  await writeAt(path, content, mtimeMs);
  return { path, sizeBytes: Buffer.byteLength(content), mtimeMs };
}

function input(
  src: CopyFileInput['src'] & { path: string },
  overrides: Partial<CopyFileInput> = {},
): CopyFileInput {
  return {
    srcPath: src.path,
    src: { sizeBytes: src.sizeBytes, mtimeMs: src.mtimeMs },
    dst: local,
    dstPath: join(temp.path, 'dst', 'report.csv'),
    onConflict: 'overwrite',
    verify: 'size',
    preserveMtime: true,
    ...overrides,
  };
}

async function names(dirPath: string): Promise<string[]> {
  return (await readdir(dirPath)).sort();
}

/** A storage that runs `before` ahead of the first call of one method: a concurrent actor. */
function withHook<K extends 'rename' | 'openRead' | 'stat'>(
  storage: Storage,
  method: K,
  before: (...args: Parameters<Storage[K]>) => Promise<void>,
): Storage {
  let fired = false;
  const original = storage[method].bind(storage) as (
    ...args: Parameters<Storage[K]>
  ) => ReturnType<Storage[K]>;
  return {
    ...storage,
    [method]: async (...args: Parameters<Storage[K]>) => {
      if (!fired) {
        fired = true;
        await before(...args);
      }
      return original(...args);
    },
  };
}

describe('copyFile to a free name', () => {
  it('writes through a temporary, keeps the mtime, and leaves only the file', async () => {
    const src = await source('hello\n');
    const result = await copyFile(input(src));
    expect(result).toMatchObject({
      outcome: 'copied',
      dstPath: join(temp.path, 'dst', 'report.csv'),
      sizeBytes: 6,
    });
    expect(await readFile(result.dstPath, 'utf8')).toBe('hello\n');
    expect((await stat(result.dstPath)).mtimeMs).toBe(SRC_MTIME_MS);
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });

  it('verify: sha256 reads the copy back and returns its hash', async () => {
    const src = await source('hash me\n');
    const result = await copyFile(input(src, { verify: 'sha256' }));
    expect(result.sha256).toBe(createHash('sha256').update('hash me\n').digest('hex'));
  });

  it('to an SFTP-like storage: uploads to a temporary and renames; mtime kept', async () => {
    const src = await source('remote\n');
    const remote = new MemoryStorage();
    const result = await copyFile(input(src, { dst: remote, dstPath: '/in/report.csv', verify: 'sha256' }));
    expect(result.outcome).toBe('copied');
    expect(remote.content('/in/report.csv')).toBe('remote\n');
    expect((await remote.stat('/in/report.csv')).mtimeMs).toBe(SRC_MTIME_MS);
    const uploads = remote.calls.filter((call) => call.op === 'upload');
    expect(uploads).toHaveLength(1);
    expect(uploads[0]?.path).toMatch(/^\/in\/\.report\.csv\.[0-9a-f]{8}\.part$/);
    expect([...remote.nodes.keys()].filter((key) => key.endsWith('.part'))).toEqual([]);
  });
});

describe('copyFile when the name holds a different file', () => {
  const dstPath = (): string => join(temp.path, 'dst', 'report.csv');

  it('overwrite replaces it', async () => {
    const src = await source();
    await writeAt(dstPath(), 'theirs, longer\n', THEIRS_MTIME_MS);
    expect((await copyFile(input(src))).outcome).toBe('copied');
    expect(await readFile(dstPath(), 'utf8')).toBe('ours\n');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });

  it('skip keeps theirs and writes nothing', async () => {
    const src = await source();
    await writeAt(dstPath(), 'theirs\n', THEIRS_MTIME_MS);
    const inode = (await stat(dstPath())).ino;
    const result = await copyFile(input(src, { onConflict: 'skip' }));
    expect(result).toMatchObject({ outcome: 'skipped-conflict', dstPath: dstPath() });
    expect(await readFile(dstPath(), 'utf8')).toBe('theirs\n');
    expect((await stat(dstPath())).ino).toBe(inode);
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });

  it('rename writes ours as "name (1).ext", then "(2)" when that is taken too', async () => {
    const src = await source();
    await writeAt(dstPath(), 'theirs\n', THEIRS_MTIME_MS);
    await writeAt(join(temp.path, 'dst', 'report (1).csv'), 'another\n', THEIRS_MTIME_MS);
    const result = await copyFile(input(src, { onConflict: 'rename' }));
    expect(result).toMatchObject({ outcome: 'renamed', dstPath: join(temp.path, 'dst', 'report (2).csv') });
    expect(await readFile(result.dstPath, 'utf8')).toBe('ours\n');
    expect(await readFile(dstPath(), 'utf8')).toBe('theirs\n');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report (1).csv', 'report (2).csv', 'report.csv']);
  });

  it('rename finds ours already beside theirs (a run stopped before recording it) and copies nothing', async () => {
    const src = await source();
    await writeAt(dstPath(), 'theirs\n', THEIRS_MTIME_MS);
    await writeAt(join(temp.path, 'dst', 'report (1).csv'), 'other\n', THEIRS_MTIME_MS);
    await writeAt(join(temp.path, 'dst', 'report (2).csv'), 'ours\n', SRC_MTIME_MS);
    const result = await copyFile(input(src, { onConflict: 'rename' }));
    expect(result).toMatchObject({
      outcome: 'already-present',
      dstPath: join(temp.path, 'dst', 'report (2).csv'),
    });
    expect(await names(join(temp.path, 'dst'))).toEqual(['report (1).csv', 'report (2).csv', 'report.csv']);
  });

  it('fail rejects with E_EXISTS naming the path and what to do, and leaves no temporary', async () => {
    const src = await source();
    await writeAt(dstPath(), 'theirs\n', THEIRS_MTIME_MS);
    const error = await copyFile(input(src, { onConflict: 'fail' })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ code: 'E_EXISTS', context: { path: dstPath() } });
    expect((error as SyncError).message).toContain(dstPath());
    expect(String((error as SyncError).context.hint)).toMatch(/remove or rename the file at the destination/);
    expect(await readFile(dstPath(), 'utf8')).toBe('theirs\n');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });

  it('keep-both moves theirs aside with its mtime in the name, then -2 for a second one', async () => {
    const src = await source();
    await writeAt(dstPath(), 'theirs\n', THEIRS_MTIME_MS);
    await writeAt(join(temp.path, 'dst', 'report.2025-06-01T080000Z.csv'), 'older\n', THEIRS_MTIME_MS);
    const result = await copyFile(input(src, { onConflict: 'keep-both' }));
    expect(result).toMatchObject({
      outcome: 'copied',
      dstPath: dstPath(),
      displacedPath: join(temp.path, 'dst', 'report.2025-06-01T080000Z-2.csv'),
    });
    expect(await readFile(dstPath(), 'utf8')).toBe('ours\n');
    expect(await readFile(result.displacedPath ?? '', 'utf8')).toBe('theirs\n');
  });

  it('a folder in the way is E_EXISTS whatever the policy', async () => {
    const src = await source();
    await mkdir(dstPath(), { recursive: true });
    await expect(copyFile(input(src, { onConflict: 'overwrite' }))).rejects.toMatchObject({
      code: 'E_EXISTS',
    });
  });
});

describe('copyFile when a different file appears at the target while ours is written', () => {
  const dstPath = (): string => join(temp.path, 'dst', 'report.csv');
  const racing = (): Storage =>
    withHook(local, 'rename', async () => {
      await writeAt(dstPath(), 'theirs, arrived meanwhile\n', THEIRS_MTIME_MS);
    });

  it.each([
    ['skip', 'skipped-conflict', 'theirs, arrived meanwhile\n', ['report.csv']],
    ['rename', 'renamed', 'theirs, arrived meanwhile\n', ['report (1).csv', 'report.csv']],
    ['overwrite', 'copied', 'ours\n', ['report.csv']],
  ] as const)('%s: outcome %s, never a silent replace', async (policy, outcome, atName, expectedNames) => {
    const src = await source();
    const result = await copyFile(input(src, { dst: racing(), onConflict: policy as CopyConflictPolicy }));
    expect(result.outcome).toBe(outcome);
    expect(await readFile(dstPath(), 'utf8')).toBe(atName);
    expect(await names(join(temp.path, 'dst'))).toEqual(expectedNames);
  });

  it('fail: E_EXISTS, theirs kept, our temporary removed', async () => {
    const src = await source();
    await expect(copyFile(input(src, { dst: racing(), onConflict: 'fail' }))).rejects.toMatchObject({
      code: 'E_EXISTS',
    });
    expect(await readFile(dstPath(), 'utf8')).toBe('theirs, arrived meanwhile\n');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });

  it('keep-both: theirs moved aside, ours under the name', async () => {
    const src = await source();
    const result = await copyFile(input(src, { dst: racing(), onConflict: 'keep-both' }));
    expect(result.outcome).toBe('copied');
    expect(await readFile(dstPath(), 'utf8')).toBe('ours\n');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.2025-06-01T080000Z.csv', 'report.csv']);
  });

  it('the same file appearing meanwhile (another copier, a crashed pass) counts as delivered', async () => {
    const src = await source();
    const sameArrives = withHook(local, 'rename', async () => {
      await writeAt(dstPath(), 'ours\n', SRC_MTIME_MS);
    });
    const result = await copyFile(input(src, { dst: sameArrives, onConflict: 'fail' }));
    expect(result.outcome).toBe('already-present');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });
});

describe('copyFile with an identical file already in place', () => {
  const dstPath = (): string => join(temp.path, 'dst', 'report.csv');

  it.each(['overwrite', 'skip', 'rename', 'fail'] as const)(
    '%s: same size and mtime is already-present, nothing written',
    async (policy) => {
      const src = await source();
      await writeAt(dstPath(), 'ours\n', SRC_MTIME_MS);
      const inode = (await stat(dstPath())).ino;
      const result = await copyFile(input(src, { onConflict: policy }));
      expect(result.outcome).toBe('already-present');
      expect((await stat(dstPath())).ino).toBe(inode);
      expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
    },
  );

  it('verify: sha256 compares the bytes (the caller need not know the source hash)', async () => {
    const src = await source();
    await writeAt(dstPath(), 'ours\n', SRC_MTIME_MS);
    const result = await copyFile(input(src, { onConflict: 'fail', verify: 'sha256' }));
    expect(result.outcome).toBe('already-present');
  });

  it('verify: sha256 with the same size and mtime but other bytes is a conflict', async () => {
    const src = await source();
    await writeAt(dstPath(), 'OURS\n', SRC_MTIME_MS);
    await expect(copyFile(input(src, { onConflict: 'fail', verify: 'sha256' }))).rejects.toMatchObject({
      code: 'E_EXISTS',
    });
  });

  it('same bytes under another mtime (preserve_mtime: false, or a copy not yet recorded) is not copied again', async () => {
    const src = await source();
    await writeAt(dstPath(), 'ours\n', THEIRS_MTIME_MS);
    const result = await copyFile(input(src, { onConflict: 'rename', preserveMtime: false }));
    expect(result.outcome).toBe('already-present');
    expect(await names(join(temp.path, 'dst'))).toEqual(['report.csv']);
  });

  it('same size but other bytes under another mtime is a conflict', async () => {
    const src = await source();
    await writeAt(dstPath(), 'OURS\n', THEIRS_MTIME_MS);
    const result = await copyFile(input(src, { onConflict: 'rename' }));
    expect(result.outcome).toBe('renamed');
  });

  it('SFTP keeps whole seconds: the same second counts as the same mtime', async () => {
    const src = await source('ours\n', SRC_MTIME_MS + 250);
    const remote = new MemoryStorage();
    remote.addFile('/in/report.csv', 'ours\n', SRC_MTIME_MS);
    const result = await copyFile(input(src, { dst: remote, dstPath: '/in/report.csv', onConflict: 'fail' }));
    expect(result.outcome).toBe('already-present');
    expect(remote.calls.some((call) => call.op === 'upload')).toBe(false);
  });
});

describe('copyFile link: hardlink', () => {
  it('gives the target the source inode', async () => {
    const src = await source('linked\n');
    const result = await copyFile(input(src, { link: 'hardlink' }));
    expect(result.outcome).toBe('copied');
    const [a, b] = await Promise.all([stat(src.path), stat(result.dstPath)]);
    expect(b.ino).toBe(a.ino);
    expect(b.nlink).toBe(2);
  });

  it('across file systems fails with a hint to use link: copy, leaving nothing behind', async () => {
    const shm = await mkdir('/dev/shm/copy-file-test', { recursive: true })
      .then(() => '/dev/shm/copy-file-test')
      .catch(() => undefined);
    if (!shm) return;
    try {
      const src = await source('linked\n');
      const dstPath = join(shm, `${process.pid}-report.csv`);
      const error = await copyFile(input(src, { link: 'hardlink', dstPath })).catch((err: unknown) => err);
      expect(error).toMatchObject({ context: { hint: expect.stringMatching(/link: copy/) } });
      expect((await readdir(shm)).filter((name) => name.includes(`${process.pid}`))).toEqual([]);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});

describe('copyFile verification', () => {
  it('verify: sha256 whose read-back differs rejects with E_VERIFY and leaves no file or temporary', async () => {
    const src = await source('the real bytes\n');
    const corrupting: Storage = {
      ...local,
      openRead: async () => Readable.from([Buffer.from('the rEal bytes\n')]),
    };
    const error = await copyFile(input(src, { dst: corrupting, verify: 'sha256' })).catch(
      (err: unknown) => err,
    );
    expect(error).toMatchObject({ code: 'E_VERIFY' });
    expect(String((error as SyncError).message)).toMatch(/reads back with a different sha256/);
    expect(await names(join(temp.path, 'dst'))).toEqual([]);
  });

  it('a copy whose size differs rejects with E_VERIFY', async () => {
    const src = await source('12345\n');
    const error = await copyFile(input(src, { src: { sizeBytes: 99, mtimeMs: SRC_MTIME_MS } })).catch(
      (err: unknown) => err,
    );
    expect(error).toMatchObject({ code: 'E_VERIFY' });
    expect(await names(join(temp.path, 'dst'))).toEqual([]);
  });

  it('a source whose bytes changed since the caller hashed it is refused', async () => {
    const src = await source('now different\n');
    const error = await copyFile(
      input(src, {
        verify: 'sha256',
        src: { sizeBytes: src.sizeBytes, mtimeMs: src.mtimeMs, sha256: '0'.repeat(64) },
      }),
    ).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'E_VERIFY' });
    expect(await names(join(temp.path, 'dst'))).toEqual([]);
  });
});

describe('the names rename and keep-both use', () => {
  it.each([
    ['dir/report.csv', 'dir/report (1).csv'],
    ['report.final.csv', 'report.final (1).csv'],
    ['data.tar.gz', 'data (1).tar.gz'],
    ['rows.csv.zst', 'rows (1).csv.zst'],
    ['logs.gz', 'logs (1).gz'],
    ['README', 'README (1)'],
    ['.profile', '.profile (1)'],
    ['.env.local', '.env (1).local'],
    ['v1.2.3.txt', 'v1.2.3 (1).txt'],
    ['export.2026-01-01.csv', 'export.2026-01-01 (1).csv'],
  ])('numberedName(%s) is %s', (path, expected) => {
    expect(numberedName(path, 1)).toBe(expected);
  });

  it('keep-both puts the timestamp before the extension', () => {
    expect(withStemSuffix('a/data.tar.gz', '.2025-06-01T080000Z')).toBe('a/data.2025-06-01T080000Z.tar.gz');
  });
});
