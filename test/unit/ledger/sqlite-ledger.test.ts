import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import {
  type DeliveryRecord,
  type FetchKey,
  type FetchRecord,
  type IncomingFileKey,
  incomingFileId,
  openSqliteLedger,
  type PassRecord,
  type SqliteLedger,
} from '../../../src/ledger/index.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const FILE_NAME = 'fetch-files.sqlite';

function key(
  remotePath: string,
  sizeBytes = 100,
  mtimeMs = 1_700_000_000_000,
  source = 'partner-a',
): FetchKey {
  return { source, remotePath, sizeBytes, mtimeMs };
}

function fetchRecord(k: FetchKey, extra: Partial<FetchRecord> = {}): FetchRecord {
  return {
    ...k,
    sha256: 'a'.repeat(64),
    localPath: `/data/incoming${k.remotePath}`,
    fetchedAtMs: 1_700_000_100_000,
    afterFetch: 'keep',
    afterFetchState: 'done',
    commitState: 'committed',
    ...extra,
  };
}

function delivery(file: IncomingFileKey, destination: string): DeliveryRecord {
  return {
    ...file,
    destination,
    dstPath: `/out/${destination}/${file.relPath}`,
    deliveredAtMs: 1_700_000_200_000,
  };
}

function pass(name: string, passNumber: number, extra: Partial<PassRecord> = {}): PassRecord {
  return {
    command: 'fetch-files',
    name,
    passNumber,
    startedAtMs: 1_700_000_000_000 + passNumber * 1000,
    endedAtMs: 1_700_000_000_500 + passNumber * 1000,
    result: 'ok',
    filesDone: passNumber,
    bytesDone: passNumber * 100,
    filesFailed: 0,
    filesWaiting: 0,
    ...extra,
  };
}

describe('openSqliteLedger', () => {
  let dir: TempDir;
  let ledger: SqliteLedger;
  const open = (): SqliteLedger =>
    openSqliteLedger({ stateDir: join(dir.path, 'state'), fileName: FILE_NAME });

  beforeEach(async () => {
    dir = await makeTempDir('ledger-');
    ledger = open();
  });
  afterEach(async () => {
    await ledger.close();
    await dir.remove();
  });

  describe('filterNotFetched', () => {
    it('returns the keys without a record, in input order, each once', async () => {
      const [a, b, c, d] = ['/in/a.csv', '/in/b.csv', '/in/c.csv', '/in/d.csv'].map((p) => key(p)) as [
        FetchKey,
        FetchKey,
        FetchKey,
        FetchKey,
      ];
      await ledger.recordFetch(fetchRecord(b));
      const result = await ledger.filterNotFetched([d, a, b, c, a, d, { ...c }]);
      expect(result.map((k) => k.remotePath)).toEqual(['/in/d.csv', '/in/a.csv', '/in/c.csv']);
      expect(await ledger.filterNotFetched([])).toEqual([]);
    });

    it('treats a changed size, a changed mtime or another source as not fetched', async () => {
      const fetched = key('/in/report.csv', 100, 1_700_000_000_000);
      await ledger.recordFetch(fetchRecord(fetched));
      const grown = { ...fetched, sizeBytes: 101 };
      const touched = { ...fetched, mtimeMs: fetched.mtimeMs + 1000 };
      const otherSource = { ...fetched, source: 'partner-b' };
      const otherPath = { ...fetched, remotePath: '/in/report.csv.bak' };
      expect(await ledger.filterNotFetched([fetched, grown, touched, otherSource, otherPath])).toEqual([
        grown,
        touched,
        otherSource,
        otherPath,
      ]);
    });

    it('matches fractional mtimes and sizes beyond 32 bits exactly', async () => {
      const local = key('/in/big.bin', 5 * 2 ** 32 + 7, 1_700_000_000_123.25);
      await ledger.recordFetch(fetchRecord(local));
      expect(await ledger.filterNotFetched([local, { ...local, mtimeMs: 1_700_000_000_123.5 }])).toEqual([
        { ...local, mtimeMs: 1_700_000_000_123.5 },
      ]);
      expect(await ledger.latestFetch(local.source, local.remotePath)).toMatchObject({
        sizeBytes: 5 * 2 ** 32 + 7,
        mtimeMs: 1_700_000_000_123.25,
      });
    });

    it('keeps order and dedupes across its internal chunks (5,000 keys)', async () => {
      const keys = Array.from({ length: 5000 }, (_, i) => key(`/in/f${i}`));
      await Promise.all(keys.filter((_, i) => i % 3 === 0).map((k) => ledger.recordFetch(fetchRecord(k))));
      // Duplicates placed so the second copy lands in a later chunk than the first.
      const input = [...keys, ...keys.slice(0, 2500)];
      const result = await ledger.filterNotFetched(input);
      expect(result.map((k) => k.remotePath)).toEqual(
        keys.filter((_, i) => i % 3 !== 0).map((k) => k.remotePath),
      );
    });

    it('sees writes that are not committed yet', async () => {
      const k = key('/in/just-fetched.csv');
      const write = ledger.recordFetch(fetchRecord(k));
      expect(ledger.stats()).toMatchObject({ pendingWrites: 1, commits: 0 });
      expect(await ledger.filterNotFetched([k])).toEqual([]);
      await write;
      expect(ledger.stats()).toMatchObject({ pendingWrites: 0, commits: 1, committedWrites: 1 });
    });
  });

  describe('recordFetch and latestFetch', () => {
    it('round-trips every field, leaving absent optional fields absent', async () => {
      const bare = fetchRecord(key('/in/bare.csv'));
      const full = fetchRecord(key('/in/full.csv'), {
        archivePath: '/data/archive/full.csv',
        afterFetch: 'move',
        afterFetchState: 'pending',
        afterFetchError: 'E_PERMISSION: rename failed',
      });
      await Promise.all([ledger.recordFetch(bare), ledger.recordFetch(full)]);
      expect(await ledger.latestFetch('partner-a', '/in/bare.csv')).toStrictEqual(bare);
      expect(await ledger.latestFetch('partner-a', '/in/full.csv')).toStrictEqual(full);
      expect(await ledger.latestFetch('partner-a', '/in/none.csv')).toBeUndefined();
      expect(await ledger.latestFetch('partner-b', '/in/bare.csv')).toBeUndefined();
    });

    it('replaces the record of the same key', async () => {
      const k = key('/in/a.csv');
      await ledger.recordFetch(fetchRecord(k, { localPath: '/data/incoming/a.csv' }));
      await ledger.recordFetch(fetchRecord(k, { localPath: '/data/incoming/a (1).csv', fetchedAtMs: 2 }));
      expect(await ledger.latestFetch(k.source, k.remotePath)).toMatchObject({
        localPath: '/data/incoming/a (1).csv',
        fetchedAtMs: 2,
      });
    });

    it('returns the newest version of a path, whatever its size and mtime', async () => {
      const path = '/in/daily.csv';
      await ledger.recordFetch(fetchRecord(key(path, 10, 3_000), { fetchedAtMs: 1_000 }));
      await ledger.recordFetch(fetchRecord(key(path, 30, 1_000), { fetchedAtMs: 3_000 }));
      await ledger.recordFetch(fetchRecord(key(path, 20, 2_000), { fetchedAtMs: 2_000 }));
      expect(await ledger.latestFetch('partner-a', path)).toMatchObject({
        sizeBytes: 30,
        fetchedAtMs: 3_000,
      });
    });
  });

  describe('two-phase commit (pendingCommits, markCommitted)', () => {
    it('lists committing records with their temporary, counts them as fetched, and clears them once committed', async () => {
      const committing = fetchRecord(key('/in/a'), {
        commitState: 'committing',
        tempPath: '/data/incoming/.a.1234.part',
      });
      await ledger.recordFetch(committing);
      await ledger.recordFetch(fetchRecord(key('/in/b')));
      await ledger.recordFetch(
        fetchRecord(key('/in/c', 1, 1, 'partner-b'), { commitState: 'committing', tempPath: '/t' }),
      );

      const pending = await ledger.pendingCommits('partner-a');
      expect(pending.map((r) => [r.remotePath, r.commitState, r.tempPath])).toEqual([
        ['/in/a', 'committing', '/data/incoming/.a.1234.part'],
      ]);
      // A committing record is a fetched file: the next listing must not download it again.
      expect(await ledger.filterNotFetched([key('/in/a')])).toEqual([]);

      await ledger.markCommitted(key('/in/a'));
      expect(await ledger.pendingCommits('partner-a')).toEqual([]);
      const after = await ledger.latestFetch('partner-a', '/in/a');
      expect(after?.commitState).toBe('committed');
      expect(after?.tempPath).toBeUndefined();
      expect((await ledger.pendingCommits('partner-b')).map((r) => r.remotePath)).toEqual(['/in/c']);
    });

    it('keeps a committing record out of pendingAfterFetch until it is committed', async () => {
      await ledger.recordFetch(
        fetchRecord(key('/in/a'), {
          afterFetch: 'delete',
          afterFetchState: 'pending',
          commitState: 'committing',
          tempPath: '/t',
        }),
      );
      expect(await ledger.pendingAfterFetch('partner-a')).toEqual([]);
      await ledger.markCommitted(key('/in/a'));
      expect((await ledger.pendingAfterFetch('partner-a')).map((r) => r.remotePath)).toEqual(['/in/a']);
    });

    it('refuses to mark a record that does not exist', async () => {
      await expect(ledger.markCommitted(key('/in/nothing'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    });
  });

  describe('pendingAfterFetch and setAfterFetchState', () => {
    it('lists pending records of one source, oldest fetch first', async () => {
      await Promise.all([
        ledger.recordFetch(
          fetchRecord(key('/in/b'), { afterFetch: 'delete', afterFetchState: 'pending', fetchedAtMs: 2 }),
        ),
        ledger.recordFetch(
          fetchRecord(key('/in/a'), { afterFetch: 'delete', afterFetchState: 'pending', fetchedAtMs: 1 }),
        ),
        ledger.recordFetch(
          fetchRecord(key('/in/c'), { afterFetch: 'delete', afterFetchState: 'done', fetchedAtMs: 3 }),
        ),
        ledger.recordFetch(
          fetchRecord(key('/in/x', 1, 1, 'partner-b'), { afterFetch: 'move', afterFetchState: 'pending' }),
        ),
      ]);
      expect((await ledger.pendingAfterFetch('partner-a')).map((r) => r.remotePath)).toEqual([
        '/in/a',
        '/in/b',
      ]);
      expect((await ledger.pendingAfterFetch('partner-b')).map((r) => r.remotePath)).toEqual(['/in/x']);
      expect(await ledger.pendingAfterFetch('partner-c')).toEqual([]);
    });

    it('keeps a failed step pending with its error line, and clears both once done', async () => {
      const k = key('/in/a');
      await ledger.recordFetch(fetchRecord(k, { afterFetch: 'delete', afterFetchState: 'pending' }));
      await ledger.setAfterFetchState(k, 'pending', 'E_CONNECTION: connection reset');
      expect(await ledger.pendingAfterFetch('partner-a')).toEqual([
        expect.objectContaining({ remotePath: '/in/a', afterFetchError: 'E_CONNECTION: connection reset' }),
      ]);
      // A retry that fails without a new line keeps the last one.
      await ledger.setAfterFetchState(k, 'pending');
      expect((await ledger.latestFetch(k.source, k.remotePath))?.afterFetchError).toBe(
        'E_CONNECTION: connection reset',
      );
      await ledger.setAfterFetchState(k, 'done');
      expect(await ledger.pendingAfterFetch('partner-a')).toEqual([]);
      const record = await ledger.latestFetch(k.source, k.remotePath);
      expect(record?.afterFetchState).toBe('done');
      expect(record).not.toHaveProperty('afterFetchError');
    });

    it('applies only to the exact version and rejects an unknown key alone', async () => {
      const k = key('/in/a');
      await ledger.recordFetch(fetchRecord(k, { afterFetch: 'delete', afterFetchState: 'pending' }));
      const other = key('/in/b');
      const [unknown, good] = await Promise.allSettled([
        ledger.setAfterFetchState({ ...k, sizeBytes: 999 }, 'done'),
        ledger.recordFetch(fetchRecord(other)),
      ]);
      expect(unknown.status).toBe('rejected');
      expect((unknown as PromiseRejectedResult).reason).toMatchObject({ code: 'E_NOT_FOUND' });
      expect(good.status).toBe('fulfilled');
      expect(await ledger.pendingAfterFetch('partner-a')).toHaveLength(1);
      expect(await ledger.filterNotFetched([other])).toEqual([]);
    });
  });

  describe('deliveries', () => {
    const a: IncomingFileKey = { relPath: 'a.csv', sizeBytes: 10, mtimeMs: 1_000 };
    const aChanged: IncomingFileKey = { relPath: 'a.csv', sizeBytes: 10, mtimeMs: 2_000 };
    const b: IncomingFileKey = { relPath: 'sub/b.csv', sizeBytes: 20, mtimeMs: 1_000 };
    const c: IncomingFileKey = { relPath: 'c.csv', sizeBytes: 30, mtimeMs: 1_000 };

    it('answers per file version which destinations hold it', async () => {
      await Promise.all([
        ledger.recordDelivery(delivery(a, 'warehouse')),
        ledger.recordDelivery(delivery(a, 'backup')),
        ledger.recordDelivery(delivery(a, 'backup')),
        ledger.recordDelivery(delivery(aChanged, 'warehouse')),
        ledger.recordDelivery(delivery(b, 'backup')),
      ]);
      const delivered = await ledger.deliveredDestinations([a, aChanged, b, c, a]);
      expect(delivered.size).toBe(4);
      expect(delivered.get(incomingFileId(a))).toEqual(new Set(['warehouse', 'backup']));
      expect(delivered.get(incomingFileId(aChanged))).toEqual(new Set(['warehouse']));
      expect(delivered.get(incomingFileId(b))).toEqual(new Set(['backup']));
      expect(delivered.get(incomingFileId(c))).toEqual(new Set());
    });

    it('forgets every delivery of one version only', async () => {
      await Promise.all([
        ledger.recordDelivery(delivery(a, 'warehouse')),
        ledger.recordDelivery(delivery(a, 'backup')),
        ledger.recordDelivery(delivery(aChanged, 'warehouse')),
      ]);
      await ledger.forgetDeliveries(a);
      const delivered = await ledger.deliveredDestinations([a, aChanged]);
      expect(delivered.get(incomingFileId(a))).toEqual(new Set());
      expect(delivered.get(incomingFileId(aChanged))).toEqual(new Set(['warehouse']));
    });

    it('forgets the deliveries of files no longer present and counts those files', async () => {
      await Promise.all([
        ledger.recordDelivery(delivery(a, 'warehouse')),
        ledger.recordDelivery(delivery(a, 'backup')),
        ledger.recordDelivery(delivery(aChanged, 'warehouse')),
        ledger.recordDelivery(delivery(b, 'backup')),
        ledger.recordDelivery(delivery(c, 'backup')),
      ]);
      expect(await ledger.forgetDeliveriesExcept([aChanged, c])).toBe(2);
      const delivered = await ledger.deliveredDestinations([a, aChanged, b, c]);
      expect([...delivered.values()].map((set) => [...set].sort())).toEqual([
        [],
        ['warehouse'],
        [],
        ['backup'],
      ]);
      expect(await ledger.forgetDeliveriesExcept([aChanged, c])).toBe(0);
      expect(await ledger.forgetDeliveriesExcept([])).toBe(2);
    });
  });

  describe('passes', () => {
    it('returns the newest pass per name of one command, and totals per name', async () => {
      await ledger.recordPass(pass('partner-a', 1));
      await ledger.recordPass(
        pass('partner-b', 1, { result: 'failed', filesFailed: 2, lastError: 'E_AUTH: denied' }),
      );
      await ledger.recordPass(pass('partner-a', 2));
      await ledger.recordPass(pass('warehouse', 7, { command: 'copy-files' }));
      await ledger.recordPass(pass('partner-a', 3, { result: 'interrupted', filesWaiting: 4 }));

      expect(await ledger.latestPasses('fetch-files')).toStrictEqual([
        pass('partner-a', 3, { result: 'interrupted', filesWaiting: 4 }),
        pass('partner-b', 1, { result: 'failed', filesFailed: 2, lastError: 'E_AUTH: denied' }),
      ]);
      expect(await ledger.latestPasses('copy-files')).toStrictEqual([
        pass('warehouse', 7, { command: 'copy-files' }),
      ]);
      expect(await ledger.latestPasses('mirror-files')).toEqual([]);

      expect(await ledger.totals('fetch-files', 'partner-a')).toEqual({ files: 6, bytes: 600, passes: 3 });
      expect(await ledger.totals('fetch-files', 'partner-b')).toEqual({ files: 1, bytes: 100, passes: 1 });
      expect(await ledger.totals('copy-files', 'partner-a')).toEqual({ files: 0, bytes: 0, passes: 0 });
    });

    it('keeps totals exact while pruning old pass rows', async () => {
      await Promise.all(Array.from({ length: 1_050 }, (_, i) => ledger.recordPass(pass('partner-a', i + 1))));
      await ledger.recordPass(pass('partner-b', 1));
      expect(await ledger.totals('fetch-files', 'partner-a')).toEqual({
        files: (1_050 * 1_051) / 2,
        bytes: ((1_050 * 1_051) / 2) * 100,
        passes: 1_050,
      });
      expect((await ledger.latestPasses('fetch-files')).map((p) => [p.name, p.passNumber])).toEqual([
        ['partner-a', 1_050],
        ['partner-b', 1],
      ]);
      await ledger.close();
      const raw = new Database(ledger.dbPath, { readonly: true });
      try {
        const rows = raw.prepare("SELECT count(*) FROM passes WHERE name = 'partner-a'").pluck().get();
        expect(rows).toBe(1_000);
      } finally {
        raw.close();
      }
    });
  });

  describe('lifecycle', () => {
    it('creates the state folder and a WAL database with its schema version', async () => {
      expect(ledger.dbPath).toBe(join(dir.path, 'state', FILE_NAME));
      expect(ledger.stats().journalMode).toBe('wal');
      await ledger.recordFetch(fetchRecord(key('/in/a')));
      const raw = new Database(ledger.dbPath, { readonly: true });
      try {
        expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
        expect(raw.pragma('user_version', { simple: true })).toBe(1);
        expect(raw.pragma('application_id', { simple: true })).toBe(0x46534c4b);
      } finally {
        raw.close();
      }
    });

    it('looks fetch keys up by the primary key, and pending records by their index', async () => {
      await ledger.recordFetch(fetchRecord(key('/in/a')));
      const raw = new Database(ledger.dbPath, { readonly: true });
      try {
        const plan = (sql: string): string =>
          raw
            .prepare(`EXPLAIN QUERY PLAN ${sql}`)
            .all(...Array.from({ length: sql.split('?').length - 1 }, () => 1))
            .map((row) => (row as { detail: string }).detail)
            .join('; ');
        expect(
          plan(
            'SELECT 1 FROM fetches WHERE source = ? AND remote_path = ? AND size_bytes = ? AND mtime_ms = ?',
          ),
        ).toMatch(
          /^SEARCH fetches USING PRIMARY KEY \(source=\? AND remote_path=\? AND size_bytes=\? AND mtime_ms=\?\)$/,
        );
        expect(
          plan(
            "SELECT * FROM fetches WHERE source = ? AND after_fetch_state = 'pending' ORDER BY fetched_at_ms",
          ),
        ).toMatch(/^SEARCH fetches USING INDEX fetches_pending \(source=\?\)$/);
        expect(
          plan('SELECT destination FROM deliveries WHERE rel_path = ? AND size_bytes = ? AND mtime_ms = ?'),
        ).toMatch(/^SEARCH deliveries USING PRIMARY KEY/);
      } finally {
        raw.close();
      }
    });

    it('keeps everything across close and reopen, and close commits what is still waiting', async () => {
      const k = key('/in/a');
      const write = ledger.recordFetch(fetchRecord(k));
      const passWrite = ledger.recordPass(pass('partner-a', 1));
      await ledger.close();
      await expect(write).resolves.toBeUndefined();
      await expect(passWrite).resolves.toBeUndefined();
      ledger = open();
      expect(await ledger.filterNotFetched([k])).toEqual([]);
      expect(await ledger.totals('fetch-files', 'partner-a')).toEqual({ files: 1, bytes: 100, passes: 1 });
    });

    it('rejects every call after close with a SyncError, and closes twice quietly', async () => {
      await ledger.close();
      await ledger.close();
      const write = ledger.recordFetch(fetchRecord(key('/in/a')));
      await expect(write).rejects.toBeInstanceOf(SyncError);
      await expect(write).rejects.toMatchObject({ code: 'E_INTERNAL', context: { path: ledger.dbPath } });
      await expect(ledger.filterNotFetched([key('/in/a')])).rejects.toBeInstanceOf(SyncError);
      await expect(ledger.latestPasses('fetch-files')).rejects.toBeInstanceOf(SyncError);
    });

    it('opens read-only without creating anything, and refuses writes', async () => {
      const missingDir = join(dir.path, 'never-created');
      const empty = openSqliteLedger({ stateDir: missingDir, fileName: FILE_NAME, readOnly: true });
      try {
        expect(await empty.filterNotFetched([key('/in/a')])).toEqual([key('/in/a')]);
        expect(await empty.latestPasses('fetch-files')).toEqual([]);
        await expect(empty.recordFetch(fetchRecord(key('/in/a')))).rejects.toMatchObject({
          code: 'E_INTERNAL',
        });
      } finally {
        await empty.close();
      }
      expect(existsSync(missingDir)).toBe(false);

      await ledger.recordFetch(fetchRecord(key('/in/a')));
      const reader = openSqliteLedger({
        stateDir: join(dir.path, 'state'),
        fileName: FILE_NAME,
        readOnly: true,
      });
      try {
        expect(await reader.filterNotFetched([key('/in/a'), key('/in/b')])).toEqual([key('/in/b')]);
      } finally {
        await reader.close();
      }
    });
  });

  it('answers filterNotFetched over 10,000 keys quickly with 50,000 records stored', async () => {
    const stored = Array.from({ length: 50_000 }, (_, i) =>
      key(`/outbound/2024/${i % 365}/file-${i}.csv`, i, i * 1000),
    );
    for (let start = 0; start < stored.length; start += 5_000) {
      await Promise.all(stored.slice(start, start + 5_000).map((k) => ledger.recordFetch(fetchRecord(k))));
    }
    const probe = Array.from({ length: 10_000 }, (_, i) =>
      i % 2 === 0 ? stored[i * 5]! : key(`/outbound/new/file-${i}.csv`, i, i),
    );
    const startedMs = performance.now();
    const notFetched = await ledger.filterNotFetched(probe);
    const elapsedMs = performance.now() - startedMs;
    expect(notFetched).toHaveLength(5_000);
    expect(notFetched.every((k) => k.remotePath.startsWith('/outbound/new/'))).toBe(true);
    // Measured about 40 ms here (and at 1,000,000 records); a scan per key would take seconds.
    expect(elapsedMs).toBeLessThan(1_000);
  });
});
