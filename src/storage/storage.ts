import type { Readable } from 'node:stream';

/**
 * Where files live. One interface over a local folder tree and an SFTP server, so
 * the same action copies local→local, SFTP→local and local→SFTP. Paths are the
 * storage's own: absolute local paths for the local storage, remote paths (absolute
 * or relative to the login folder) for SFTP. Every method either resolves or rejects
 * with a SyncError carrying code, op, host and path; none may hang on a dead peer.
 */
export interface Storage {
  readonly kind: 'local' | 'sftp';
  /** For messages: `local` or `sftp://user@host:port`. */
  readonly label: string;

  /**
   * Entries below `dirPath`, streamed: a huge folder is never held whole in memory
   * where the protocol allows. Links are reported as links (never followed); `.` and
   * `..` are never reported. In recursive mode folders are reported before their
   * contents, and a folder that cannot be read is reported through `onError` (when
   * given) rather than ending the listing.
   */
  list(dirPath: string, options?: ListOptions): AsyncIterable<StorageEntry>;

  /** Metadata of a path; links are followed unless `followLinks: false`. Rejects with E_NOT_FOUND. */
  stat(path: string, options?: { followLinks?: boolean }): Promise<StorageStat>;

  /** Target of a symbolic link, as stored. */
  readLink(path: string): Promise<string>;

  /** Canonical absolute path, links resolved. */
  realPath(path: string): Promise<string>;

  /** A stream of the file's bytes from `startOffset` (default 0). */
  openRead(path: string, options?: OpenReadOptions): Promise<Readable>;

  /**
   * Copies `srcPath` on this storage to `localPath` on the local disk, computing the
   * sha256 while the bytes stream. `localPath` is written as given: callers pass a
   * temporary name and rename it themselves.
   */
  download(srcPath: string, localPath: string, options?: TransferOptions): Promise<TransferResult>;

  /** Copies the local file `localPath` to `dstPath` on this storage, hashing while it streams. */
  upload(localPath: string, dstPath: string, options?: TransferOptions): Promise<TransferResult>;

  /**
   * Renames a file. With `overwrite: true` an existing target is replaced, atomically
   * where the server can (local rename, posix-rename@openssh.com); with `overwrite:
   * false` an existing target makes it reject with E_EXISTS and nothing changes.
   */
  rename(fromPath: string, toPath: string, options: { overwrite: boolean }): Promise<void>;

  /** Removes a file or link. Rejects with E_NOT_FOUND when it is already gone. */
  remove(path: string): Promise<void>;

  /** Removes an empty folder. */
  removeDir(path: string): Promise<void>;

  /** Creates a folder and its missing parents; an existing folder is fine. */
  mkdirp(path: string, options?: { mode?: number }): Promise<void>;

  /** Sets a file's modification (and access) time. */
  setTimes(path: string, mtimeMs: number): Promise<void>;

  /** Sets a file's permission bits. */
  setMode(path: string, mode: number): Promise<void>;

  /** Bytes available to us in the file system holding `path`, or null when the server cannot say. */
  freeSpace(path: string): Promise<number | null>;

  /** Releases connections; safe to call twice. Bounded by a deadline like every other call. */
  close(): Promise<void>;
}

export type EntryType = 'file' | 'dir' | 'link' | 'other';

export interface StorageEntry {
  /** Base name, exactly as the storage returned it (bytes decoded as UTF-8). */
  name: string;
  /** Path relative to the listed folder, `/`-separated. */
  relPath: string;
  type: EntryType;
  sizeBytes: number;
  mtimeMs: number;
  /** Permission bits and file type bits as `stat` gives them. */
  mode: number;
  /** Target of a link, as stored; only for `type: 'link'` and only where the storage reports it. */
  linkTarget?: string;
}

export interface StorageStat {
  type: EntryType;
  sizeBytes: number;
  mtimeMs: number;
  mode: number;
}

export interface ListOptions {
  recursive?: boolean;
  signal?: AbortSignal;
  /** Called for a folder below `dirPath` that could not be read; the listing goes on. Without it, the listing rejects. */
  onError?: (error: Error, relPath: string) => void;
  /** Folders (relative paths) not to descend into, e.g. a `move_to` below `remote_dir`. */
  skipDir?: (relPath: string) => boolean;
}

export interface OpenReadOptions {
  startOffset?: number;
  signal?: AbortSignal;
}

export interface TransferOptions {
  signal?: AbortSignal;
  /** Called as bytes arrive; at most every few hundred milliseconds for big files. */
  onProgress?: (bytesDone: number, sizeBytes: number) => void;
  /** Permission bits for the created file. */
  fileMode?: number;
  /** fsync the written file before resolving (local targets; SFTP uses fsync@openssh.com where offered). */
  fsync?: boolean;
  /** Modification time for the written file, set before it is synced and closed (`mtimeSet` tells). */
  mtimeMs?: number;
  /**
   * `download`: the size the caller expects the source to have (from a listing). Reads are
   * planned by it instead of asking the server, and a source of any other length fails
   * with E_CHANGED, as one that changed while it was read does.
   */
  expectedSizeBytes?: number;
  /**
   * `download`: also stat the source once every byte was read (`sourceAfter`), alongside
   * the local sync. The caller compares it with what it expects: a source that grew shows
   * there, so the download may leave out its own read past the end.
   */
  statSourceAfter?: boolean;
}

export interface TransferResult {
  sizeBytes: number;
  /** Lower-case hex sha256 of the bytes written. */
  sha256: string;
  durationMs: number;
  /** The written file was synced, as `fsync` asked; absent when the storage does not say. */
  synced?: boolean;
  /** The written file has `mtimeMs`, as asked; absent when the storage does not say. */
  mtimeSet?: boolean;
  /** With `statSourceAfter`: the source's size and mtime once every byte was read. */
  sourceAfter?: { sizeBytes: number; mtimeMs: number };
}
