/**
 * What was fetched and delivered, durable across crashes and restarts. Async so that
 * a shared database can stand behind it later; the embedded implementation
 * (SQLite, WAL) answers synchronously inside. A resolved write is on disk.
 */
export interface Ledger {
  // ---- fetcher -------------------------------------------------------------

  /**
   * The keys among `keys` that have no fetch record yet, in input order; a key listed twice is returned once.
   * Batched: one call per listing chunk.
   */
  filterNotFetched(keys: readonly FetchKey[]): Promise<FetchKey[]>;

  /** Records a completed fetch (file renamed into incoming, archive copy made). Replaces a record with the same key. */
  recordFetch(record: FetchRecord): Promise<void>;

  /**
   * Marks a record written with `commitState: 'committing'` as committed: its
   * temporary has been renamed into incoming.
   */
  markCommitted(key: FetchKey): Promise<void>;

  /** Records of one source still marked committing: a crash came between the record and the rename. */
  pendingCommits(source: string): Promise<FetchRecord[]>;

  /** Every source with a record still marked committing, whether or not the config names it. */
  sourcesWithPendingCommits(): Promise<string[]>;

  /** The newest fetch record of one remote path of one source, whatever its size and mtime. */
  latestFetch(source: string, remotePath: string): Promise<FetchRecord | undefined>;

  /** Committed fetches whose `after_fetch` step (delete, move) has not succeeded yet. */
  pendingAfterFetch(source: string): Promise<FetchRecord[]>;

  /** Marks the after-fetch step done, or failed with the error line (kept pending, retried next pass). */
  setAfterFetchState(key: FetchKey, state: 'done' | 'pending', errorLine?: string): Promise<void>;

  // ---- copier --------------------------------------------------------------

  /** For each file, the destinations that already hold this version of it (an empty set when none does). */
  deliveredDestinations(files: readonly IncomingFileKey[]): Promise<Map<string, Set<string>>>;

  recordDelivery(record: DeliveryRecord): Promise<void>;

  /** Forgets every delivery of this version of a file: called once it has left incoming. */
  forgetDeliveries(file: IncomingFileKey): Promise<void>;

  /**
   * Forgets deliveries of files that are no longer in incoming (e.g. after a crash between removal and forget).
   * Resolves with the number of file versions forgotten.
   */
  forgetDeliveriesExcept(present: readonly IncomingFileKey[]): Promise<number>;

  // ---- every command -------------------------------------------------------

  /** One row per source/destination/job per pass, for `status`. */
  recordPass(record: PassRecord): Promise<void>;

  /** The latest pass record of every source/destination/job of a command. */
  latestPasses(command: CommandName): Promise<PassRecord[]>;

  /** Totals over every recorded pass of one source/destination/job. */
  totals(command: CommandName, name: string): Promise<{ files: number; bytes: number; passes: number }>;

  /** Closes the database; later calls reject. Safe to call twice. */
  close(): Promise<void>;
}

export type CommandName = 'fetch-files' | 'copy-files' | 'mirror-files';

/** A fetched version of a remote file: same source, path, size and mtime means the same file. */
export interface FetchKey {
  source: string;
  /** Full remote path, as listed (remote_dir joined with the relative path). */
  remotePath: string;
  sizeBytes: number;
  mtimeMs: number;
}

export interface FetchRecord extends FetchKey {
  sha256: string;
  /** Where the file landed in incoming (absolute). */
  localPath: string;
  /** Where its archive copy is (absolute), when archiving is on. */
  archivePath?: string;
  fetchedAtMs: number;
  afterFetch: 'keep' | 'delete' | 'move';
  afterFetchState: 'done' | 'pending';
  /** The last failure of the after-fetch step, one line. */
  afterFetchError?: string;
  /**
   * Two-phase commit into incoming: recorded as `committing` (with the temporary's
   * path) before the rename, `committed` after it. A crash in between is finished by
   * the next pass from this record.
   */
  commitState: 'committing' | 'committed';
  /** The temporary in incoming that becomes `localPath`, while committing. */
  tempPath?: string;
}

/** A version of a file in incoming, by its path relative to incoming. */
export interface IncomingFileKey {
  relPath: string;
  sizeBytes: number;
  mtimeMs: number;
}

/** `relPath` + size + mtime as one string, the key of `deliveredDestinations`' map. */
export function incomingFileId(file: IncomingFileKey): string {
  return `${file.relPath}\u0000${file.sizeBytes}\u0000${file.mtimeMs}`;
}

export interface DeliveryRecord extends IncomingFileKey {
  destination: string;
  /** Path of the copy at the destination (local path or remote path). */
  dstPath: string;
  sha256?: string;
  deliveredAtMs: number;
}

export interface PassRecord {
  command: CommandName;
  /** Source, destination or job name. */
  name: string;
  passNumber: number;
  startedAtMs: number;
  endedAtMs: number;
  result: 'ok' | 'failed' | 'interrupted';
  filesDone: number;
  bytesDone: number;
  filesFailed: number;
  /** Files still waiting after the pass (e.g. undelivered, or skipped for space). */
  filesWaiting: number;
  /** The first error line of the pass, when any. */
  lastError?: string;
}
