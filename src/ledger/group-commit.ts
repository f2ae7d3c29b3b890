import type Database from 'better-sqlite3';
import type { SyncError } from '../errors/index.js';
import { isSqliteError, isStatementOnlySqliteError } from './to-ledger-error.js';

export interface GroupCommitOptions {
  /**
   * Least time from the end of one commit to the start of the next. 0 commits at every
   * turn of the event loop; more bounds the share of time the loop spends blocked in fsync.
   */
  commitIntervalMs: number;
  /** A commit starts at once when this many writes wait. */
  maxBatchWrites: number;
  /** Wraps any failure as the SyncError the writer sees. */
  toError: (err: unknown, op: string) => SyncError;
  /**
   * Makes committed transactions durable (an fsync of the WAL) off the event loop, for a
   * database whose COMMIT does not sync by itself (WAL with `synchronous=NORMAL`). When
   * given, a batch resolves only once a sync that started after its COMMIT has ended, and
   * the next COMMIT waits for the sync in flight: the batch grows meanwhile.
   */
  sync?: () => Promise<void>;
}

export interface GroupCommitStats {
  /** Transactions committed. */
  commits: number;
  /** Writes made durable by those transactions. */
  committedWrites: number;
  /** Transactions that failed and were rolled back (every write in them rejected). */
  failedBatches: number;
  /** Time spent inside COMMIT (the fsync, unless `sync` does it), during which the event loop is blocked. */
  commitMs: number;
}

interface PendingWrite {
  value: unknown;
  resolve: (value: unknown) => void;
  reject: (err: SyncError) => void;
}

/**
 * Group commit over one SQLite connection. Each write is applied at once inside an open
 * write transaction; one COMMIT (one fsync) later makes the whole batch durable, and only
 * then do the writes' promises resolve. Because the writes are already applied, reads on
 * the same connection see them before they are committed, with no overlay to maintain.
 *
 * When the batch commits: at the next turn of the event loop (so everything that arrived
 * together shares a commit), but no sooner than `commitIntervalMs` after the previous
 * commit ended, or at once when `maxBatchWrites` writes wait. A lone write after a quiet
 * spell is durable within one loop turn; under load, commits are spaced out and batches grow.
 *
 * A write that fails on its own (a constraint, a bad argument, a SyncError thrown by the
 * write itself) rejects alone and the batch goes on; a failure that may have undone the
 * transaction (disk full, I/O, busy) rolls the batch back and rejects every write in it,
 * since none of them is durable.
 */
export class GroupCommit {
  private readonly db: Database.Database;
  private readonly options: GroupCommitOptions;
  private readonly beginStatement: Database.Statement;
  private readonly commitStatement: Database.Statement;
  private batch: PendingWrite[] = [];
  /** Batches committed but not yet covered by a sync (only with `sync`). */
  private unsynced: PendingWrite[][] = [];
  private syncing: Promise<void> | undefined;
  private cancelScheduled: (() => void) | undefined;
  private lastCommitEndMs = Number.NEGATIVE_INFINITY;
  private readonly counters: GroupCommitStats = {
    commits: 0,
    committedWrites: 0,
    failedBatches: 0,
    commitMs: 0,
  };

  constructor(db: Database.Database, options: GroupCommitOptions) {
    this.db = db;
    this.options = options;
    // IMMEDIATE: take the write lock when the batch opens, so COMMIT cannot fail on it later.
    this.beginStatement = db.prepare('BEGIN IMMEDIATE');
    this.commitStatement = db.prepare('COMMIT');
  }

  /** Applies `apply` now inside the open batch; resolves with its result once the batch has committed. */
  write<T>(op: string, apply: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      try {
        if (!this.db.inTransaction) this.beginStatement.run();
      } catch (err) {
        reject(this.options.toError(err, op));
        return;
      }
      let value: T;
      try {
        value = apply();
      } catch (err) {
        const wrapped = this.options.toError(err, op);
        if (this.db.inTransaction && isWriteOnlyFailure(err)) {
          reject(wrapped);
          this.scheduleCommit();
        } else {
          this.failBatch(wrapped, reject);
        }
        return;
      }
      this.batch.push({ value, resolve: resolve as (value: unknown) => void, reject });
      if (this.batch.length >= this.options.maxBatchWrites) this.commitNow();
      else this.scheduleCommit();
    });
  }

  /** Commits the open batch now (e.g. before close). Failures reach the writers, not the caller. */
  commitNow(): void {
    this.cancelScheduled?.();
    this.cancelScheduled = undefined;
    const batch = this.batch;
    this.batch = [];
    if (!this.db.inTransaction) {
      // Writes still waiting here lost their transaction without us rolling it back: not durable.
      if (batch.length > 0) {
        this.counters.failedBatches += 1;
        const lost = new Error('the ledger transaction ended before its commit');
        this.settle(batch, this.options.toError(lost, 'commit ledger writes'));
      }
      return;
    }
    const startedMs = performance.now();
    try {
      this.commitStatement.run();
    } catch (err) {
      this.rollbackQuietly();
      this.counters.failedBatches += 1;
      this.settle(batch, this.options.toError(err, 'commit ledger writes'));
      return;
    } finally {
      this.lastCommitEndMs = performance.now();
      this.counters.commitMs += this.lastCommitEndMs - startedMs;
    }
    if (this.options.sync) {
      this.unsynced.push(batch);
      this.startSync();
      return;
    }
    this.counters.commits += 1;
    this.counters.committedWrites += batch.length;
    this.settle(batch, undefined);
  }

  /** Commits the open batch and waits until every committed write is durable (before close). */
  async drain(): Promise<void> {
    this.commitNow();
    while (this.syncing) await this.syncing;
  }

  get pendingWrites(): number {
    return this.batch.length;
  }

  stats(): GroupCommitStats {
    return { ...this.counters };
  }

  /**
   * One sync at a time; it covers every batch committed before it started. Batches
   * committed while it ran wait for the next one, and the open batch commits when it ends.
   */
  private startSync(): void {
    const sync = this.options.sync;
    if (!sync || this.syncing || this.unsynced.length === 0) return;
    const covered = this.unsynced;
    this.unsynced = [];
    const done = (err: SyncError | undefined): void => {
      this.syncing = undefined;
      for (const batch of covered) {
        if (err) this.counters.failedBatches += 1;
        else {
          this.counters.commits += 1;
          this.counters.committedWrites += batch.length;
        }
        this.settle(batch, err);
      }
      if (this.unsynced.length > 0) this.startSync();
      else if (this.batch.length > 0) this.scheduleCommit();
    };
    this.syncing = sync().then(
      () => done(undefined),
      (err: unknown) => done(this.options.toError(err, 'sync ledger writes')),
    );
  }

  private scheduleCommit(): void {
    if (this.cancelScheduled !== undefined) return;
    // The sync in flight commits the open batch when it ends (startSync).
    if (this.syncing) return;
    const fire = (): void => {
      this.cancelScheduled = undefined;
      this.commitNow();
    };
    // Neither is unref'd: a caller awaiting a write must keep the process alive until it is durable.
    const waitMs = this.lastCommitEndMs + this.options.commitIntervalMs - performance.now();
    if (waitMs <= 0) {
      const immediate = setImmediate(fire);
      this.cancelScheduled = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(fire, Math.ceil(waitMs));
      this.cancelScheduled = () => clearTimeout(timer);
    }
  }

  private failBatch(err: SyncError, rejectCurrent: (err: SyncError) => void): void {
    this.cancelScheduled?.();
    this.cancelScheduled = undefined;
    this.rollbackQuietly();
    const batch = this.batch;
    this.batch = [];
    this.counters.failedBatches += 1;
    this.settle(batch, err);
    rejectCurrent(err);
  }

  private rollbackQuietly(): void {
    if (!this.db.inTransaction) return;
    try {
      this.db.exec('ROLLBACK');
    } catch {
      // SQLite may have rolled back already; the connection stays usable either way.
    }
  }

  private settle(batch: PendingWrite[], err: SyncError | undefined): void {
    for (const write of batch) {
      if (err) write.reject(err);
      else write.resolve(write.value);
    }
  }
}

/** Failures that touched nothing but the one write: the open transaction holds only good writes. */
function isWriteOnlyFailure(err: unknown): boolean {
  if (isSqliteError(err)) return isStatementOnlySqliteError(err);
  // Bad arguments (TypeError/RangeError from binding) and our own checks fail before SQLite changes anything.
  return true;
}
