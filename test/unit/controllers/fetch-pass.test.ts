import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import { diskFreeBytes } from '../../../src/storage/disk-free-bytes.js';
import type { ListOptions, StorageEntry } from '../../../src/storage/storage.js';
import { hashTree, listFiles, listTemporaries, sha256Of } from '../../support/fetcher-scenario.js';
import { MemoryStorage } from '../../support/memory-storage.js';
import { createFetchKit, type FetchKit, linesStartingWith, sourceConfig } from './fetch-test-kit.js';

const MINUTE_MS = 60_000;
const GiB = 1024 ** 3;

/** A remote whose listing reports some files far bigger than they are: the free-space check only reads the listing. */
class InflatedMemoryStorage extends MemoryStorage {
  constructor(private readonly listedSizes: Map<string, number>) {
    super();
  }

  override async *list(dirPath: string, options: ListOptions = {}): AsyncIterable<StorageEntry> {
    for await (const entry of super.list(dirPath, options)) {
      const sizeBytes = this.listedSizes.get(entry.relPath);
      yield sizeBytes === undefined ? entry : { ...entry, sizeBytes };
    }
  }
}

function downloads(remote: MemoryStorage): string[] {
  return remote.calls.filter((call) => call.op === 'download').map((call) => call.path);
}

describe('runFetchPass (in-memory remote, real incoming and ledger)', () => {
  let kit: FetchKit;
  beforeEach(async () => {
    kit = await createFetchKit();
  });
  afterEach(async () => {
    await kit.close();
  });

  it('fetches oldest first and stops at max_files_per_pass; the rest wait for the next pass', async () => {
    const remote = new MemoryStorage();
    const now = Date.now();
    remote.addFile('/a/newest.csv', 'n', now - 1 * MINUTE_MS);
    remote.addFile('/a/oldest.csv', 'o', now - 30 * MINUTE_MS);
    remote.addFile('/a/sub/middle.csv', 'm', now - 10 * MINUTE_MS);
    remote.addFile('/a/also-oldest.csv', 'p', now - 30 * MINUTE_MS);
    const source = sourceConfig('a', { maxFilesPerPass: 3 });
    const config = kit.config({}, [source]);

    const [first] = await kit.pass(config, [{ source, remote }], { concurrency: 1 });
    // Same mtime: by path, so the order is stable.
    expect(downloads(remote)).toEqual(['/a/also-oldest.csv', '/a/oldest.csv', '/a/sub/middle.csv']);
    expect(first).toMatchObject({ listed: 4, selected: 4, done: 3, waiting: 1, failed: 0 });

    const [second] = await kit.pass(config, [{ source, remote }], { concurrency: 1 });
    expect(downloads(remote).slice(3)).toEqual(['/a/newest.csv']);
    expect(second).toMatchObject({ done: 1, alreadyDone: 3, waiting: 0 });
    expect(await listFiles(join(kit.incoming, 'a'))).toEqual([
      'also-oldest.csv',
      'newest.csv',
      'oldest.csv',
      'sub/middle.csv',
    ]);
  });

  it('skips files that would not fit above min_free_space, goes on with smaller ones, and retries them later', async () => {
    // A real condition: the reserve is set to what is free now minus 1 GiB, and three files are listed
    // far bigger than that (the in-memory remote lies about their size; they are never downloaded).
    const freeNow = await diskFreeBytes(kit.temp.path);
    const remote = new InflatedMemoryStorage(
      new Map([
        ['big-1.bin', 64 * GiB],
        ['big-2.bin', 2 * GiB],
        ['big-3.bin', 1.5 * GiB],
      ]),
    );
    const now = Date.now();
    // The big files are the oldest: they come first, and must not block the small ones.
    for (const name of ['big-1.bin', 'big-2.bin', 'big-3.bin'])
      remote.addFile(`/a/${name}`, 'x', now - 60 * MINUTE_MS);
    const small = Buffer.alloc(10 * 1024, 7);
    for (let index = 0; index < 5; index += 1)
      remote.addFile(`/a/small-${index}.bin`, small, now - 5 * MINUTE_MS);
    const source = sourceConfig('a');
    const config = kit.config({ minFreeSpaceBytes: freeNow - GiB }, [source]);

    const [report] = await kit.pass(config, [{ source, remote }]);

    expect(downloads(remote).sort()).toEqual([0, 1, 2, 3, 4].map((index) => `/a/small-${index}.bin`));
    expect(report).toMatchObject({ done: 5, waiting: 3, failed: 0 });
    expect(report?.error).toMatch(/^E_DISK_FULL: 3 files wait: not enough free space in /);
    expect(report?.notableSkips['not enough free space in incoming']?.count).toBe(3);
    // Nothing was recorded for them: they are candidates again next pass.
    const bigKeys = ['big-1.bin', 'big-2.bin', 'big-3.bin'].map((name) => ({
      source: 'a',
      remotePath: `/a/${name}`,
      sizeBytes: name === 'big-1.bin' ? 64 * GiB : name === 'big-2.bin' ? 2 * GiB : 1.5 * GiB,
      mtimeMs: now - 60 * MINUTE_MS,
    }));
    expect(await kit.ledger.filterNotFetched(bigKeys)).toHaveLength(3);
    expect(await listTemporaries(kit.incoming)).toEqual([]);
  });

  it('one failing file does not stop the others; the failure is one error line with its path and code', async () => {
    const remote = new MemoryStorage();
    for (const name of ['a.csv', 'b.csv', 'c.csv']) remote.addFile(`/a/${name}`, name);
    remote.beforeOp = (op, path) => {
      if (op === 'download' && path === '/a/b.csv')
        throw new SyncError('E_PERMISSION', 'permission denied: /a/b.csv', { op, path });
    };
    const source = sourceConfig('a');
    const [report] = await kit.pass(kit.config({}, [source]), [{ source, remote }]);

    expect(report).toMatchObject({ done: 2, failed: 1 });
    expect(await listFiles(kit.incoming)).toEqual(['a/a.csv', 'a/c.csv']);
    const errors = linesStartingWith(kit.lines, 'cannot fetch');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ source: 'a', remotePath: '/a/b.csv', err: { code: 'E_PERMISSION' } });
    expect(await listTemporaries(kit.incoming, kit.archive)).toEqual([]);
  });

  it('a source that is down fails alone: the other source is fetched', async () => {
    const down = new MemoryStorage();
    down.addFile('/down/x.csv', 'x');
    down.beforeOp = (op, path) => {
      if (op === 'list') throw new SyncError('E_CONNECTION', 'connection refused', { op, path });
    };
    const up = new MemoryStorage();
    up.addFile('/up/y.csv', 'y');
    const downSource = sourceConfig('down');
    const upSource = sourceConfig('up');
    const reports = await kit.pass(kit.config({}, [downSource, upSource]), [
      { source: downSource, remote: down },
      { source: upSource, remote: up },
    ]);
    expect(reports.find((report) => report.name === 'down')?.error).toMatch(
      /^E_CONNECTION: connection refused/,
    );
    expect(reports.find((report) => report.name === 'up')).toMatchObject({ done: 1, failed: 0 });
    expect(await listFiles(kit.incoming)).toEqual(['up/y.csv']);
  });

  it('a file that changes while it is downloaded is not committed, and is fetched once it is stable', async () => {
    const remote = new MemoryStorage();
    const listedMtimeMs = Date.now() - 10 * MINUTE_MS;
    remote.addFile('/a/growing.csv', 'first part', listedMtimeMs);
    remote.addFile('/a/stable.csv', 'stable', listedMtimeMs);
    remote.beforeOp = (op, path) => {
      if (op === 'download' && path === '/a/growing.csv') {
        // The partner appends while we read: the re-stat after the transfer sees it.
        remote.addFile('/a/growing.csv', 'first part, second part', Date.now() - 5 * MINUTE_MS);
        remote.beforeOp = () => undefined;
      }
    };
    const source = sourceConfig('a');
    const config = kit.config({}, [source]);

    const [first] = await kit.pass(config, [{ source, remote }]);
    expect(first).toMatchObject({ done: 1, skipped: 1, failed: 0 });
    expect(first?.notableSkips['changed while it was fetched (fetched again later)']?.examples).toEqual([
      'growing.csv',
    ]);
    expect(await listFiles(kit.incoming)).toEqual(['a/stable.csv']);
    expect(await listFiles(kit.archive)).toEqual(['a/stable.csv']);
    expect(await listTemporaries(kit.incoming, kit.archive)).toEqual([]);

    const [second] = await kit.pass(config, [{ source, remote }]);
    expect(second).toMatchObject({ done: 1, alreadyDone: 1 });
    expect(await readFile(join(kit.incoming, 'a', 'growing.csv'), 'utf8')).toBe('first part, second part');
  });

  it('two files that map to one incoming name in the same pass both land, under two names, without a failure', async () => {
    // A custom layout without {source}: two partners both deliver report.csv in the same pass.
    const sources = ['p1', 'p2', 'p3'].map((name) => sourceConfig(name, { incomingLayout: '{name}' }));
    const handles = sources.map((source) => {
      const remote = new MemoryStorage();
      remote.addFile(`/${source.name}/report.csv`, `report of ${source.name}`);
      return { source, remote };
    });
    const config = kit.config({}, sources);

    const reports = await kit.pass(config, handles);
    expect(reports.map((report) => [report.name, report.done, report.failed])).toEqual([
      ['p1', 1, 0],
      ['p2', 1, 0],
      ['p3', 1, 0],
    ]);
    const incoming = await hashTree(kit.incoming);
    expect([...incoming.keys()].sort()).toEqual(['report (1).csv', 'report (2).csv', 'report.csv']);
    expect(new Set(incoming.values())).toEqual(
      new Set(['p1', 'p2', 'p3'].map((name) => sha256Of(`report of ${name}`))),
    );
    // Each ledger record names the file that holds its bytes, and nothing is left to recover.
    for (const source of sources) {
      const record = await kit.ledger.latestFetch(source.name, `/${source.name}/report.csv`);
      expect(record?.commitState).toBe('committed');
      expect(await readFile(record?.localPath ?? '', 'utf8')).toBe(`report of ${source.name}`);
    }
    // A second pass changes nothing.
    await kit.pass(config, handles);
    expect(await hashTree(kit.incoming)).toEqual(incoming);
  });
});
