import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import { GroupCommit } from '../../../src/ledger/group-commit.js';
import { toLedgerError } from '../../../src/ledger/to-ledger-error.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

/** A sync the test ends by hand: what the WAL fsync looks like from GroupCommit's side. */
interface HeldSync {
  resolve: () => void;
  reject: (err: Error) => void;
}

async function until(condition: () => boolean): Promise<void> {
  for (let turn = 0; turn < 500 && !condition(); turn += 1)
    await new Promise((resolve) => setTimeout(resolve, 2));
  expect(condition()).toBe(true);
}

describe('group commit with the WAL sync off the event loop', () => {
  let dir: TempDir;
  let db: Database.Database;
  let other: Database.Database;
  let syncs: HeldSync[];
  let commits: GroupCommit;
  let insert: Database.Statement;

  beforeEach(async () => {
    dir = await makeTempDir('group-commit-');
    const path = join(dir.path, 'ledger.sqlite');
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (n INTEGER)');
    other = new Database(path, { readonly: true });
    insert = db.prepare('INSERT INTO t VALUES (?)');
    syncs = [];
    commits = new GroupCommit(db, {
      commitIntervalMs: 0,
      maxBatchWrites: 1_000,
      toError: (err, op) => toLedgerError(err, { op, path }),
      sync: () => new Promise<void>((resolve, reject) => syncs.push({ resolve, reject })),
    });
  });
  afterEach(async () => {
    other.close();
    db.close();
    await dir.remove();
  });

  const rowsSeenByAnotherConnection = (): number =>
    (other.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;

  it('resolves a write only once a sync that started after its COMMIT has ended', async () => {
    let resolved = false;
    const write = commits
      .write('insert', () => insert.run(1))
      .then(() => {
        resolved = true;
      });
    await until(() => syncs.length === 1);
    // Committed (another connection sees it) but not yet durable: the writer still waits.
    expect(rowsSeenByAnotherConnection()).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(resolved).toBe(false);
    syncs[0]?.resolve();
    await write;
    expect(resolved).toBe(true);
    expect(commits.stats()).toMatchObject({ commits: 1, committedWrites: 1, failedBatches: 0 });
  });

  it('holds the next COMMIT while a sync runs; the writes meanwhile share one COMMIT and their own sync', async () => {
    const first = commits.write('insert', () => insert.run(1));
    await until(() => syncs.length === 1);
    const more = [2, 3, 4].map((n) => commits.write('insert', () => insert.run(n)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Not committed yet: they wait in the open transaction for the sync in flight to end.
    expect(rowsSeenByAnotherConnection()).toBe(1);
    expect(syncs).toHaveLength(1);
    syncs[0]?.resolve();
    await first;
    await until(() => syncs.length === 2);
    expect(rowsSeenByAnotherConnection()).toBe(4);
    syncs[1]?.resolve();
    await Promise.all(more);
    expect(commits.stats()).toMatchObject({ commits: 2, committedWrites: 4 });
  });

  it('rejects every write of a batch whose sync failed, and goes on with the next batch', async () => {
    const failing = [1, 2].map((n) => commits.write('insert', () => insert.run(n)));
    await until(() => syncs.length === 1);
    syncs[0]?.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    for (const write of failing) await expect(write).rejects.toBeInstanceOf(SyncError);
    const next = commits.write('insert', () => insert.run(3));
    await until(() => syncs.length === 2);
    syncs[1]?.resolve();
    await expect(next).resolves.toBeDefined();
    expect(commits.stats()).toMatchObject({ commits: 1, committedWrites: 1, failedBatches: 1 });
  });

  it('drain commits the open batch and waits for its sync', async () => {
    const write = commits.write('insert', () => insert.run(1));
    const drained = commits.drain();
    await until(() => syncs.length === 1);
    syncs[0]?.resolve();
    await drained;
    await write;
    expect(commits.pendingWrites).toBe(0);
  });
});
