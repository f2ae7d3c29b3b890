import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { SyncError, toSyncError } from '../errors/index.js';
import { GroupCommit, type GroupCommitStats } from './group-commit.js';
import {
  type CommandName,
  type DeliveryRecord,
  type FetchKey,
  type FetchRecord,
  type IncomingFileKey,
  incomingFileId,
  type Ledger,
  type PassRecord,
} from './ledger.js';
import { prepareLedgerSchema } from './ledger-schema.js';
import { toLedgerError } from './to-ledger-error.js';
import { createWalSync, type WalSync } from './wal-sync.js';

export interface SqliteLedgerOptions {
  /** Folder of the database; created when missing. */
  stateDir: string;
  /** Database file name inside `stateDir`, e.g. `fetch-files.sqlite`. */
  fileName: string;
  /**
   * Least time between the end of one commit (one fsync) and the start of the next; writes
   * arriving meanwhile share the next commit. Bounds the share of time the event loop is
   * blocked in fsync under load. Default 3 ms; a write after a quiet spell commits at once.
   */
  commitIntervalMs?: number;
  /** A commit starts at once when this many writes wait. Default 1,000. */
  maxBatchWrites?: number;
  /** How long SQLite waits for another connection's lock before failing with E_LOCKED. Default 5,000 ms. */
  busyTimeoutMs?: number;
  /**
   * Reads only (`status`, `--dry-run`): nothing is created, writes reject. A ledger file
   * that does not exist yet reads as empty.
   */
  readOnly?: boolean;
}

export interface SqliteLedgerStats extends GroupCommitStats {
  /** Writes applied but not committed yet. */
  pendingWrites: number;
  /** `wal` unless the file system refused it. */
  journalMode: string;
}

/** The embedded ledger, plus what tests and benchmarks need to see group commit at work. */
export interface SqliteLedger extends Ledger {
  readonly dbPath: string;
  stats(): SqliteLedgerStats;
}

const DEFAULT_COMMIT_INTERVAL_MS = 3;
const DEFAULT_MAX_BATCH_WRITES = 1_000;
const DEFAULT_BUSY_TIMEOUT_MS = 5_000;
/** Keys looked up per synchronous step: a 100k-entry listing never blocks the event loop for long. */
const READ_CHUNK_KEYS = 2_000;
/** Pass rows kept per command and name; older ones only fed `totals`, which keeps running sums. */
const PASS_HISTORY_PER_NAME = 1_000;
const PAGE_CACHE_KIB = 32 * 1024;

interface FetchRow {
  source: string;
  remote_path: string;
  size_bytes: number;
  mtime_ms: number;
  sha256: string;
  local_path: string;
  archive_path: string | null;
  fetched_at_ms: number;
  after_fetch: FetchRecord['afterFetch'];
  after_fetch_state: FetchRecord['afterFetchState'];
  after_fetch_error: string | null;
  commit_state: FetchRecord['commitState'];
  temp_path: string | null;
}

interface PassRow {
  command: CommandName;
  name: string;
  pass_number: number;
  started_at_ms: number;
  ended_at_ms: number;
  result: PassRecord['result'];
  files_done: number;
  bytes_done: number;
  files_failed: number;
  files_waiting: number;
  last_error: string | null;
}

/**
 * Opens (creating when missing) the ledger database `stateDir/fileName`: WAL, and a
 * write resolves only once the WAL holding it was fsynced, so a resolved write survives a
 * crash of the process or the machine (the fsync runs off the event loop, see WalSync).
 *
 * Writes are group-committed (see `GroupCommit`): each is applied at once and resolves
 * after the transaction that holds it commits, within a few ms. Reads run on the same
 * connection, so they see every write made so far, committed or still waiting for its
 * commit; a write whose batch later fails is rejected to its caller.
 */
export function openSqliteLedger(options: SqliteLedgerOptions): SqliteLedger {
  const dbPath = ledgerPath(options);
  if (options.readOnly) return openReadOnly(dbPath, options);
  try {
    mkdirSync(options.stateDir, { recursive: true });
  } catch (err) {
    throw toSyncError(err, { op: 'create state_dir', path: options.stateDir });
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  let db: Database.Database | undefined;
  try {
    db = new Database(dbPath, { timeout: busyTimeoutMs });
    const journalMode = String(db.pragma('journal_mode = WAL', { simple: true }));
    // In WAL mode FULL differs from NORMAL only by an fsync of the WAL inside every COMMIT,
    // which would block the event loop: GroupCommit does that fsync itself, off the loop,
    // before any write resolves (WalSync). Other journal modes need FULL for durability.
    const walSync = journalMode === 'wal' ? createWalSync(`${dbPath}-wal`) : undefined;
    db.pragma(walSync ? 'synchronous = NORMAL' : 'synchronous = FULL');
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    // Cap the WAL file left after a checkpoint; it otherwise keeps its largest size.
    db.pragma('journal_size_limit = 67108864');
    prepareLedgerSchema(db, dbPath);
    // SQLite quietly opens an unwritable file read-only; find out now, not after the first file is fetched.
    db.exec('BEGIN IMMEDIATE; DELETE FROM fetches WHERE 0; ROLLBACK');
    return new SqliteLedgerImpl(db, dbPath, journalMode, options, walSync);
  } catch (err) {
    try {
      db?.close();
    } catch {
      // The open failure is what the operator needs to see.
    }
    throw toLedgerError(err, { op: 'open ledger', path: dbPath });
  }
}

function openReadOnly(dbPath: string, options: SqliteLedgerOptions): SqliteLedger {
  let db: Database.Database | undefined;
  try {
    // Nothing recorded yet: an empty schema in memory answers every read with "nothing".
    db =
      existsSync(dbPath) && statSync(dbPath).size > 0
        ? new Database(dbPath, {
            readonly: true,
            fileMustExist: true,
            timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
          })
        : new Database(':memory:');
    prepareLedgerSchema(db, dbPath);
    return new SqliteLedgerImpl(db, dbPath, String(db.pragma('journal_mode', { simple: true })), options);
  } catch (err) {
    try {
      db?.close();
    } catch {
      // The open failure is what the operator needs to see.
    }
    throw toLedgerError(err, { op: 'open ledger', path: dbPath });
  }
}

function ledgerPath(options: SqliteLedgerOptions): string {
  const { fileName } = options;
  if (fileName === '' || fileName === '.' || fileName === '..' || basename(fileName) !== fileName) {
    throw new SyncError('E_INTERNAL', `ledger file name "${fileName}" must be a plain file name`, {
      op: 'open ledger',
      path: options.stateDir,
      hint: 'this is a bug: pass a name such as fetch-files.sqlite',
    });
  }
  return join(options.stateDir, fileName);
}

class SqliteLedgerImpl implements SqliteLedger {
  readonly dbPath: string;
  private readonly db: Database.Database;
  private readonly journalMode: string;
  private readonly commits: GroupCommit;
  private readonly readOnly: boolean;
  private readonly walSync: WalSync | undefined;
  private closed = false;

  private readonly fetchExists: Database.Statement<[string, string, number, number], number>;
  private readonly fetchUpsert: Database.Statement;
  private readonly fetchLatest: Database.Statement<[string, string], FetchRow>;
  private readonly fetchPending: Database.Statement<[string], FetchRow>;
  private readonly fetchSetDone: Database.Statement;
  private readonly fetchSetPending: Database.Statement;
  private readonly fetchCommitting: Database.Statement<[string], FetchRow>;
  private readonly fetchCommittingSources: Database.Statement<[], string>;
  private readonly fetchSetCommitted: Database.Statement;
  private readonly deliveryDestinations: Database.Statement<[string, number, number], string>;
  private readonly deliveryUpsert: Database.Statement;
  private readonly deliveryForget: Database.Statement;
  private readonly deliveryVersions: Database.Statement<
    [],
    { rel_path: string; size_bytes: number; mtime_ms: number }
  >;
  private readonly passInsert: Database.Statement;
  private readonly passTotalsUpsert: Database.Statement;
  private readonly passPrune: Database.Statement;
  private readonly passLatest: Database.Statement<[string], PassRow>;
  private readonly passTotals: Database.Statement<
    [string, string],
    { files: number; bytes: number; passes: number }
  >;

  constructor(
    db: Database.Database,
    dbPath: string,
    journalMode: string,
    options: SqliteLedgerOptions,
    walSync?: WalSync,
  ) {
    this.db = db;
    this.dbPath = dbPath;
    this.journalMode = journalMode;
    this.readOnly = options.readOnly ?? false;
    this.walSync = walSync;
    this.commits = new GroupCommit(db, {
      commitIntervalMs: options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS,
      maxBatchWrites: options.maxBatchWrites ?? DEFAULT_MAX_BATCH_WRITES,
      toError: (err, op) => toLedgerError(err, { op, path: dbPath }),
      ...(walSync ? { sync: () => walSync.sync() } : {}),
    });

    this.fetchExists = db
      .prepare<[string, string, number, number], number>(
        'SELECT 1 FROM fetches WHERE source = ? AND remote_path = ? AND size_bytes = ? AND mtime_ms = ?',
      )
      .pluck();
    this.fetchUpsert = db.prepare(
      `INSERT OR REPLACE INTO fetches (source, remote_path, size_bytes, mtime_ms, sha256, local_path, archive_path,
         fetched_at_ms, after_fetch, after_fetch_state, after_fetch_error, commit_state, temp_path)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.fetchLatest = db.prepare<[string, string], FetchRow>(
      `SELECT * FROM fetches WHERE source = ? AND remote_path = ?
       ORDER BY fetched_at_ms DESC, mtime_ms DESC LIMIT 1`,
    );
    this.fetchPending = db.prepare<[string], FetchRow>(
      `SELECT * FROM fetches WHERE source = ? AND after_fetch_state = 'pending' AND commit_state = 'committed'
       ORDER BY fetched_at_ms, remote_path`,
    );
    this.fetchCommitting = db.prepare<[string], FetchRow>(
      `SELECT * FROM fetches WHERE source = ? AND commit_state = 'committing' ORDER BY fetched_at_ms, remote_path`,
    );
    this.fetchCommittingSources = db
      .prepare<[], string>(
        `SELECT DISTINCT source FROM fetches WHERE commit_state = 'committing' ORDER BY source`,
      )
      .pluck();
    this.fetchSetCommitted = db.prepare(
      `UPDATE fetches SET commit_state = 'committed', temp_path = NULL
       WHERE source = ? AND remote_path = ? AND size_bytes = ? AND mtime_ms = ?`,
    );
    this.fetchSetDone = db.prepare(
      `UPDATE fetches SET after_fetch_state = 'done', after_fetch_error = NULL
       WHERE source = ? AND remote_path = ? AND size_bytes = ? AND mtime_ms = ?`,
    );
    this.fetchSetPending = db.prepare(
      `UPDATE fetches SET after_fetch_state = 'pending', after_fetch_error = coalesce(?, after_fetch_error)
       WHERE source = ? AND remote_path = ? AND size_bytes = ? AND mtime_ms = ?`,
    );
    this.deliveryDestinations = db
      .prepare<[string, number, number], string>(
        'SELECT destination FROM deliveries WHERE rel_path = ? AND size_bytes = ? AND mtime_ms = ?',
      )
      .pluck();
    this.deliveryUpsert = db.prepare(
      `INSERT OR REPLACE INTO deliveries (rel_path, size_bytes, mtime_ms, destination, dst_path, sha256, delivered_at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.deliveryForget = db.prepare(
      'DELETE FROM deliveries WHERE rel_path = ? AND size_bytes = ? AND mtime_ms = ?',
    );
    this.deliveryVersions = db.prepare<[], { rel_path: string; size_bytes: number; mtime_ms: number }>(
      'SELECT DISTINCT rel_path, size_bytes, mtime_ms FROM deliveries',
    );
    this.passInsert = db.prepare(
      `INSERT INTO passes (command, name, pass_number, started_at_ms, ended_at_ms, result, files_done, bytes_done,
         files_failed, files_waiting, last_error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.passTotalsUpsert = db.prepare(
      `INSERT INTO pass_totals (command, name, files, bytes, passes, last_pass_id) VALUES (?, ?, ?, ?, 1, ?)
       ON CONFLICT (command, name) DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes,
         passes = passes + 1, last_pass_id = excluded.last_pass_id`,
    );
    this.passPrune = db.prepare(
      `DELETE FROM passes WHERE command = @command AND name = @name AND id <= (
         SELECT id FROM passes WHERE command = @command AND name = @name ORDER BY id DESC LIMIT 1 OFFSET @keep)`,
    );
    this.passLatest = db.prepare<[string], PassRow>(
      `SELECT p.* FROM pass_totals t JOIN passes p ON p.id = t.last_pass_id
       WHERE t.command = ? ORDER BY t.name`,
    );
    this.passTotals = db.prepare<[string, string], { files: number; bytes: number; passes: number }>(
      'SELECT files, bytes, passes FROM pass_totals WHERE command = ? AND name = ?',
    );
  }

  // ---- fetcher -------------------------------------------------------------

  async filterNotFetched(keys: readonly FetchKey[]): Promise<FetchKey[]> {
    const seen = new Set<string>();
    const notFetched: FetchKey[] = [];
    for (let start = 0; start < keys.length; start += READ_CHUNK_KEYS) {
      if (start > 0) await yieldToEventLoop();
      this.read('filterNotFetched', () => {
        for (const key of keys.slice(start, start + READ_CHUNK_KEYS)) {
          const id = fetchKeyId(key);
          if (seen.has(id)) continue;
          seen.add(id);
          if (this.fetchExists.get(key.source, key.remotePath, key.sizeBytes, key.mtimeMs) === undefined) {
            notFetched.push(key);
          }
        }
      });
    }
    return notFetched;
  }

  recordFetch(record: FetchRecord): Promise<void> {
    return this.write('recordFetch', () => {
      this.fetchUpsert.run(
        record.source,
        record.remotePath,
        record.sizeBytes,
        record.mtimeMs,
        record.sha256,
        record.localPath,
        record.archivePath ?? null,
        record.fetchedAtMs,
        record.afterFetch,
        record.afterFetchState,
        record.afterFetchError ?? null,
        record.commitState,
        record.tempPath ?? null,
      );
    });
  }

  markCommitted(key: FetchKey): Promise<void> {
    return this.write('markCommitted', () => {
      const result = this.fetchSetCommitted.run(key.source, key.remotePath, key.sizeBytes, key.mtimeMs);
      if (result.changes === 0) {
        throw new SyncError(
          'E_NOT_FOUND',
          `no fetch record of ${key.remotePath} from ${key.source} to mark committed`,
          {
            op: 'markCommitted',
            source: key.source,
            remotePath: key.remotePath,
            hint: 'this is a bug: record the fetch before committing it',
          },
        );
      }
    });
  }

  pendingCommits(source: string): Promise<FetchRecord[]> {
    return this.query('pendingCommits', () => this.fetchCommitting.all(source).map(toFetchRecord));
  }

  sourcesWithPendingCommits(): Promise<string[]> {
    return this.query('sourcesWithPendingCommits', () => this.fetchCommittingSources.all());
  }

  latestFetch(source: string, remotePath: string): Promise<FetchRecord | undefined> {
    return this.query('latestFetch', () => {
      const row = this.fetchLatest.get(source, remotePath);
      return row && toFetchRecord(row);
    });
  }

  pendingAfterFetch(source: string): Promise<FetchRecord[]> {
    return this.query('pendingAfterFetch', () => this.fetchPending.all(source).map(toFetchRecord));
  }

  setAfterFetchState(key: FetchKey, state: 'done' | 'pending', errorLine?: string): Promise<void> {
    return this.write('setAfterFetchState', () => {
      const where = [key.source, key.remotePath, key.sizeBytes, key.mtimeMs] as const;
      const result =
        state === 'done'
          ? this.fetchSetDone.run(...where)
          : this.fetchSetPending.run(errorLine ?? null, ...where);
      if (result.changes === 0) {
        throw new SyncError(
          'E_NOT_FOUND',
          `no fetch record of ${key.remotePath} from ${key.source} to update`,
          {
            op: 'setAfterFetchState',
            source: key.source,
            remotePath: key.remotePath,
            hint: 'this is a bug: record the fetch before its after-fetch state',
          },
        );
      }
    });
  }

  // ---- copier --------------------------------------------------------------

  async deliveredDestinations(files: readonly IncomingFileKey[]): Promise<Map<string, Set<string>>> {
    const delivered = new Map<string, Set<string>>();
    for (let start = 0; start < files.length; start += READ_CHUNK_KEYS) {
      if (start > 0) await yieldToEventLoop();
      this.read('deliveredDestinations', () => {
        for (const file of files.slice(start, start + READ_CHUNK_KEYS)) {
          const id = incomingFileId(file);
          if (delivered.has(id)) continue;
          delivered.set(
            id,
            new Set(this.deliveryDestinations.all(file.relPath, file.sizeBytes, file.mtimeMs)),
          );
        }
      });
    }
    return delivered;
  }

  recordDelivery(record: DeliveryRecord): Promise<void> {
    return this.write('recordDelivery', () => {
      this.deliveryUpsert.run(
        record.relPath,
        record.sizeBytes,
        record.mtimeMs,
        record.destination,
        record.dstPath,
        record.sha256 ?? null,
        record.deliveredAtMs,
      );
    });
  }

  forgetDeliveries(file: IncomingFileKey): Promise<void> {
    return this.write('forgetDeliveries', () => {
      this.deliveryForget.run(file.relPath, file.sizeBytes, file.mtimeMs);
    });
  }

  /** Resolves with the number of file versions whose deliveries were forgotten. */
  forgetDeliveriesExcept(present: readonly IncomingFileKey[]): Promise<number> {
    return this.write('forgetDeliveriesExcept', () => {
      const keep = new Set(present.map(incomingFileId));
      // Deliveries only exist for files still in incoming, so this table stays small.
      const gone = this.deliveryVersions
        .all()
        .map((row) => ({ relPath: row.rel_path, sizeBytes: row.size_bytes, mtimeMs: row.mtime_ms }))
        .filter((file) => !keep.has(incomingFileId(file)));
      this.db.transaction(() => {
        for (const file of gone) this.deliveryForget.run(file.relPath, file.sizeBytes, file.mtimeMs);
      })();
      return gone.length;
    });
  }

  // ---- every command -------------------------------------------------------

  recordPass(record: PassRecord): Promise<void> {
    return this.write('recordPass', () => {
      // A savepoint: the three statements land together or not at all.
      this.db.transaction(() => {
        const { lastInsertRowid } = this.passInsert.run(
          record.command,
          record.name,
          record.passNumber,
          record.startedAtMs,
          record.endedAtMs,
          record.result,
          record.filesDone,
          record.bytesDone,
          record.filesFailed,
          record.filesWaiting,
          record.lastError ?? null,
        );
        this.passTotalsUpsert.run(
          record.command,
          record.name,
          record.filesDone,
          record.bytesDone,
          lastInsertRowid,
        );
        this.passPrune.run({ command: record.command, name: record.name, keep: PASS_HISTORY_PER_NAME });
      })();
    });
  }

  latestPasses(command: CommandName): Promise<PassRecord[]> {
    return this.query('latestPasses', () => this.passLatest.all(command).map(toPassRecord));
  }

  totals(command: CommandName, name: string): Promise<{ files: number; bytes: number; passes: number }> {
    return this.query('totals', () => {
      const row = this.passTotals.get(command, name);
      return row
        ? { files: row.files, bytes: row.bytes, passes: row.passes }
        : { files: 0, bytes: 0, passes: 0 };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Writers learn of a failed final commit or sync through their own promises.
    await this.commits.drain();
    await this.walSync?.close().catch(() => undefined);
    try {
      this.db.pragma('optimize');
    } catch {
      // Only statistics for the query planner; never worth failing a close.
    }
    try {
      this.db.close();
    } catch (err) {
      throw toLedgerError(err, { op: 'close ledger', path: this.dbPath });
    }
  }

  stats(): SqliteLedgerStats {
    return {
      ...this.commits.stats(),
      pendingWrites: this.commits.pendingWrites,
      journalMode: this.journalMode,
    };
  }

  // ---- plumbing ------------------------------------------------------------

  private write<T>(op: string, apply: () => T): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError(op));
    if (this.readOnly) {
      return Promise.reject(
        new SyncError('E_INTERNAL', `${op} on a ledger opened read-only (${this.dbPath})`, {
          op,
          path: this.dbPath,
          hint: 'this is a bug: a read-only run (status, --dry-run) tried to record something',
        }),
      );
    }
    return this.commits.write(op, apply);
  }

  private query<T>(op: string, query: () => T): Promise<T> {
    // A throw inside the executor becomes the rejection.
    return new Promise<T>((resolve) => resolve(this.read(op, query)));
  }

  /** Runs `query` in one read transaction (or inside the open write batch); throws a SyncError. */
  private read<T>(op: string, query: () => T): T {
    if (this.closed) throw this.closedError(op);
    try {
      return this.db.inTransaction ? query() : this.db.transaction(query)();
    } catch (err) {
      throw toLedgerError(err, { op, path: this.dbPath });
    }
  }

  private closedError(op: string): SyncError {
    return new SyncError('E_INTERNAL', `${op} called after the ledger was closed (${this.dbPath})`, {
      op,
      path: this.dbPath,
      hint: 'this is a bug: the ledger was closed while work was still running',
    });
  }
}

function fetchKeyId(key: FetchKey): string {
  return `${key.source}\u0000${key.remotePath}\u0000${key.sizeBytes}\u0000${key.mtimeMs}`;
}

function toFetchRecord(row: FetchRow): FetchRecord {
  return {
    source: row.source,
    remotePath: row.remote_path,
    sizeBytes: row.size_bytes,
    mtimeMs: row.mtime_ms,
    sha256: row.sha256,
    localPath: row.local_path,
    ...(row.archive_path === null ? {} : { archivePath: row.archive_path }),
    fetchedAtMs: row.fetched_at_ms,
    afterFetch: row.after_fetch,
    afterFetchState: row.after_fetch_state,
    ...(row.after_fetch_error === null ? {} : { afterFetchError: row.after_fetch_error }),
    commitState: row.commit_state,
    ...(row.temp_path === null ? {} : { tempPath: row.temp_path }),
  };
}

function toPassRecord(row: PassRow): PassRecord {
  return {
    command: row.command,
    name: row.name,
    passNumber: row.pass_number,
    startedAtMs: row.started_at_ms,
    endedAtMs: row.ended_at_ms,
    result: row.result,
    filesDone: row.files_done,
    bytesDone: row.bytes_done,
    filesFailed: row.files_failed,
    filesWaiting: row.files_waiting,
    ...(row.last_error === null ? {} : { lastError: row.last_error }),
  };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
