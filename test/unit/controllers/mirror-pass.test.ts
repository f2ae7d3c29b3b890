/**
 * runMirrorPass on real temp folders, with faults injected through a wrapping
 * Storage: a source folder that cannot be read (copies go on, nothing is removed), a
 * replica folder that cannot be read (nothing touched), and a replica that fills up
 * mid-pass (nothing more started, nothing removed).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MirrorConfig, MirrorJobConfig } from '../../../src/config/index.js';
import { runMirrorPass } from '../../../src/controllers/mirror-pass.js';
import { SyncError } from '../../../src/errors/index.js';
import {
  createLocalStorage,
  type ListOptions,
  type Storage,
  type StorageEntry,
} from '../../../src/storage/index.js';
import { snapshot, writeTree } from '../../integration/mirror/mirror-kit.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const log = pino({ level: 'silent' });

/** The local storage, except that `unreadable` (relative to `root`) fails to list and `failRename` fails. */
function faulty(
  root: string,
  faults: { unreadable?: string; failRename?: (path: string) => SyncError | undefined },
): Storage {
  const local = createLocalStorage();
  return {
    ...local,
    list(dirPath: string, options: ListOptions = {}): AsyncIterable<StorageEntry> {
      const skipped = faults.unreadable;
      return (async function* () {
        for await (const entry of local.list(dirPath, {
          ...options,
          skipDir: (relPath) => relPath === skipped || (options.skipDir?.(relPath) ?? false),
        })) {
          yield entry;
          if (dirPath === root && entry.relPath === skipped) {
            const error = new SyncError('E_PERMISSION', `cannot read ${entry.relPath}`, {
              op: 'list',
              path: entry.relPath,
            });
            if (!options.onError) throw error;
            options.onError(error, entry.relPath);
          }
        }
      })();
    },
    async rename(fromPath, toPath, options) {
      const error = faults.failRename?.(toPath);
      if (error) throw error;
      return local.rename(fromPath, toPath, options);
    },
  };
}

describe('runMirrorPass with faults', () => {
  let temp: TempDir;
  let src: string;
  let rep: string;
  beforeEach(async () => {
    temp = await makeTempDir('mirror-pass-');
    src = join(temp.path, 'src');
    rep = join(temp.path, 'rep');
    const mtime = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
    await writeTree(src, { 'a.txt': 'a', 'locked/b.txt': 'b', 'c.txt': 'c', 'd.txt': 'd' }, mtime);
    await writeTree(rep, { 'old.txt': 'old', 'locked/b.txt': 'b' }, mtime);
  });
  afterEach(async () => {
    await temp.remove();
  });

  function job(): MirrorJobConfig {
    return {
      name: 'j',
      enabled: true,
      source: { kind: 'local', path: src },
      replica: { kind: 'local', path: rep },
      include: [],
      exclude: [],
      compare: 'size_mtime',
      links: 'skip',
      preserveMode: false,
      maxDelete: { kind: 'percent', percent: 100 },
      delete: true,
    };
  }

  function pass(source: Storage, replica: Storage) {
    return runMirrorPass({
      config: { jobs: [job()] } as unknown as MirrorConfig,
      jobs: [{ job: job(), source, replica }],
      log,
      limit: pLimit(2),
      dryRun: false,
      stopSignal: new AbortController().signal,
      abortSignal: new AbortController().signal,
    });
  }

  it('a source folder that cannot be read: the rest is copied, nothing is removed, the pass says why', async () => {
    const [report] = await pass(faulty(src, { unreadable: 'locked' }), createLocalStorage());
    expect(report?.error).toMatch(
      /E_SAFETY: 1 folder\(s\) of the source cannot be read \(first: locked: .*nothing is removed/,
    );
    const after = await snapshot(rep);
    expect([...after.keys()].sort()).toEqual([
      'a.txt',
      'c.txt',
      'd.txt',
      'locked',
      'locked/b.txt',
      'old.txt',
    ]);
  });

  it('a replica folder that cannot be read: refused before anything is touched', async () => {
    const before = await snapshot(rep);
    const [report] = await pass(createLocalStorage(), faulty(rep, { unreadable: 'locked' }));
    expect(report?.error).toMatch(
      /^E_SAFETY: 1 folder\(s\) of the replica cannot be read .*nothing was changed/,
    );
    expect(await snapshot(rep)).toEqual(before);
  });

  it('a replica that fills up mid-pass: nothing more is started and nothing is removed', async () => {
    await mkdir(join(src, 'more'), { recursive: true });
    for (let index = 0; index < 6; index += 1) await writeFile(join(src, 'more', `m${index}.txt`), 'm');
    const full = new SyncError('E_DISK_FULL', 'no space left', { op: 'rename' });
    const [report] = await pass(
      createLocalStorage(),
      faulty(rep, { failRename: (path) => (path.endsWith('a.txt') ? full : undefined) }),
    );
    expect(report?.error).toMatch(/^E_DISK_FULL: no space left/);
    const after = await snapshot(rep);
    expect(after.has('old.txt')).toBe(true);
    expect(after.has('a.txt')).toBe(false);
    // Only what was already in flight when the replica went down got through; the rest waits.
    const moreCopied = [...after.keys()].filter((rel) => rel.startsWith('more/')).length;
    expect(moreCopied).toBeLessThan(6);
    expect(report?.waiting).toBeGreaterThanOrEqual(1 + 6 - moreCopied);
  });
});
