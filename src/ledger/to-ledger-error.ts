import { type ErrorCode, type ErrorContext, SyncError, toSyncError } from '../errors/index.js';

interface SqliteLikeError {
  code?: unknown;
  message?: unknown;
}

interface SqliteMapping {
  code: ErrorCode;
  what: string;
  hint: string;
}

/**
 * SQLite's result codes (better-sqlite3 puts the extended name in `code`, e.g.
 * `SQLITE_IOERR_FSYNC`), matched by prefix, each with the fix an operator would try first.
 */
const SQLITE_CODES: ReadonlyArray<readonly [prefix: string, mapping: SqliteMapping]> = [
  [
    'SQLITE_FULL',
    {
      code: 'E_DISK_FULL',
      what: 'disk full',
      hint: 'free space on the disk that holds state_dir; the write was not recorded',
    },
  ],
  [
    'SQLITE_READONLY',
    {
      code: 'E_PERMISSION',
      what: 'database is read-only',
      hint: 'make state_dir and the ledger files (*.sqlite, -wal, -shm) writable by this user',
    },
  ],
  [
    'SQLITE_CANTOPEN',
    {
      code: 'E_PERMISSION',
      what: 'cannot open the database file',
      hint: 'check that state_dir exists and that this user may create and write files in it',
    },
  ],
  [
    'SQLITE_PERM',
    {
      code: 'E_PERMISSION',
      what: 'access denied',
      hint: 'check the owner and mode of state_dir and the ledger files',
    },
  ],
  [
    'SQLITE_AUTH',
    {
      code: 'E_PERMISSION',
      what: 'access denied',
      hint: 'check the owner and mode of state_dir and the ledger files',
    },
  ],
  [
    'SQLITE_NOTADB',
    {
      code: 'E_IO',
      what: 'not a SQLite database (damaged, or some other file)',
      hint: 'restore the ledger from a backup, or move this file aside to start a new ledger (files already fetched would then be fetched again)',
    },
  ],
  [
    'SQLITE_CORRUPT',
    {
      code: 'E_IO',
      what: 'database is damaged',
      hint: 'restore the ledger from a backup, or move this file aside to start a new ledger (files already fetched would then be fetched again)',
    },
  ],
  [
    'SQLITE_BUSY',
    {
      code: 'E_LOCKED',
      what: 'database is busy: another process holds it',
      hint: 'check that no other process uses this state_dir (the state lock should prevent it)',
    },
  ],
  [
    'SQLITE_LOCKED',
    {
      code: 'E_LOCKED',
      what: 'database table is locked',
      hint: 'check that no other process uses this state_dir',
    },
  ],
  [
    'SQLITE_CONSTRAINT',
    {
      code: 'E_INTERNAL',
      what: 'record refused by the schema',
      hint: 'this is a bug: the debug log has the full trace',
    },
  ],
  [
    'SQLITE_IOERR',
    {
      code: 'E_IO',
      what: 'I/O error',
      hint: 'check the disk that holds state_dir (dmesg, free space, mount state)',
    },
  ],
];

/** True for errors raised by SQLite itself (as opposed to bad arguments or our own checks). */
export function isSqliteError(err: unknown): boolean {
  const code = (err as SqliteLikeError | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

/** True for a SQLite error that undid one statement only, leaving the transaction open and usable. */
export function isStatementOnlySqliteError(err: unknown): boolean {
  const code = (err as SqliteLikeError | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT');
}

/**
 * Wraps an error of the ledger as a SyncError naming the database file. SQLite errors
 * are mapped by their result code; anything else goes through `toSyncError`.
 * `context.path` should be the database path.
 */
export function toLedgerError(err: unknown, context: ErrorContext & { op: string; path: string }): SyncError {
  if (err instanceof SyncError) return err.withContext(context);
  if (!isSqliteError(err)) return toSyncError(err, context);
  const sqliteCode = String((err as SqliteLikeError).code);
  const found = SQLITE_CODES.find(([prefix]) => sqliteCode.startsWith(prefix));
  const mapping: SqliteMapping = found?.[1] ?? {
    code: 'E_IO',
    what: 'database error',
    hint: 'check the disk that holds state_dir; the debug log has the details',
  };
  const message = (err as SqliteLikeError).message;
  const detail = typeof message === 'string' && message !== '' ? `: ${message}` : '';
  return new SyncError(
    mapping.code,
    `${context.op} failed: ${mapping.what} (${context.path}; ${sqliteCode}${detail})`,
    { hint: mapping.hint, ...context, sqliteCode, cause: err },
  );
}
