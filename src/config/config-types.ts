import type { Secret } from './secret.js';

/**
 * The typed, frozen result of loading a config file. Names carry their units;
 * every path is absolute (local) or as written (remote). Nothing after loading reads
 * raw YAML or the environment.
 */

export type SftpAuth =
  | { kind: 'key'; privateKeyPath: string; passphrase?: Secret }
  | { kind: 'password'; password: Secret }
  | { kind: 'agent'; agentSocketPath: string };

export type HostKeyCheck =
  | { kind: 'known_hosts'; knownHostsPath: string }
  | { kind: 'fingerprint'; fingerprints: readonly string[] }
  | { kind: 'insecure' };

/** How to reach one SFTP server: shared by fetcher sources, SFTP destinations and mirror ends. */
export interface SftpConnectionConfig {
  host: string;
  port: number;
  username: string;
  auth: SftpAuth;
  hostKey: HostKeyCheck;
  /** Sessions kept open to this server (the pool size). */
  connections: number;
  connectTimeoutMs: number;
  /** Deadline for one SFTP request, and for a transfer that makes no progress. */
  operationTimeoutMs: number;
  keepaliveIntervalMs: number;
  /** Attempts for a transient fault (reset, timeout) before a file is counted failed. */
  retries: number;
  /** Reads in flight per download (chunked parallel reads). */
  readConcurrency: number;
  chunkSizeBytes: number;
}

export type AfterFetch = 'keep' | 'delete' | 'move';

export interface SourceConfig extends SftpConnectionConfig {
  name: string;
  enabled: boolean;
  remoteDir: string;
  recursive: boolean;
  include: readonly string[];
  exclude: readonly string[];
  minAgeMs: number;
  minSizeBytes?: number;
  maxSizeBytes?: number;
  followLinks: boolean;
  afterFetch: AfterFetch;
  moveTo?: string;
  verify: 'size' | 'sidecar';
  maxFilesPerPass?: number;
  /** Where a file lands below `incoming`: placeholders {source}, {path}, {dir}, {name}. */
  incomingLayout: string;
}

export interface LoopConfig {
  intervalMs: number;
  /** Cron expression; when set, passes start on it instead of `intervalMs`. */
  schedule?: string;
  /** IANA time zone for `schedule`; default the machine's. */
  timeZone?: string;
  shutdownGraceMs: number;
}

export interface CommonConfig extends LoopConfig {
  /** The file this config came from. */
  configPath: string;
  concurrencyLimit: number;
  stateDir: string;
  logDir: string;
  /** Permission bits for created files and folders; undefined means "from the umask". */
  fileMode?: number;
  dirMode?: number;
}

export interface FetcherConfig extends CommonConfig {
  kind: 'fetcher';
  incoming: string;
  archive?: string;
  /** Where a file lands below `archive`: placeholders {source}, {path}, {dir}, {name}, {date}. */
  archiveLayout: string;
  /** Free space kept in `incoming`'s file system; a download that would go below it is skipped. */
  minFreeSpaceBytes: number;
  sources: readonly SourceConfig[];
}

export type OnConflict = 'overwrite' | 'skip' | 'rename' | 'fail';

interface DestinationBase {
  name: string;
  enabled: boolean;
  include: readonly string[];
  exclude: readonly string[];
  onConflict: OnConflict;
  verify: 'size' | 'sha256';
  minFreeSpaceBytes: number;
  preserveMtime: boolean;
}

export interface LocalDestinationConfig extends DestinationBase {
  kind: 'local';
  path: string;
  link: 'copy' | 'hardlink';
}

export interface SftpDestinationConfig extends DestinationBase {
  kind: 'sftp';
  /** Remote folder. */
  path: string;
  sftp: SftpConnectionConfig;
}

export type DestinationConfig = LocalDestinationConfig | SftpDestinationConfig;

export interface CopierConfig extends CommonConfig {
  kind: 'copier';
  incoming: string;
  /** Files younger than this are left for a later pass: a producer may still write them in place. */
  minAgeMs: number;
  /** When set, a delivered file is moved here instead of removed. */
  doneDir?: string;
  unmatched: 'keep' | 'move';
  unmatchedDir?: string;
  watch: boolean;
  destinations: readonly DestinationConfig[];
}

/** One end of a mirror job: a local folder, or a folder on an SFTP server. */
export type MirrorEndpoint =
  | { kind: 'local'; path: string }
  | {
      kind: 'sftp';
      /** Remote folder: absolute, or relative to the login folder. */
      path: string;
      sftp: SftpConnectionConfig;
    };

/** How many removals one pass may make before it stops without removing anything. */
export type MaxDelete = { kind: 'count'; count: number } | { kind: 'percent'; percent: number };

export interface MirrorJobConfig {
  name: string;
  enabled: boolean;
  source: MirrorEndpoint;
  replica: MirrorEndpoint;
  include: readonly string[];
  exclude: readonly string[];
  /** `size_mtime`: a file changed when its size or mtime differs; `checksum`: when its sha256 differs. */
  compare: 'size_mtime' | 'checksum';
  /** Symbolic links in the source: ignored, recreated as links (local replica), or their file targets copied. */
  links: 'skip' | 'copy-as-link' | 'follow';
  /** Give copies and folders the source's permission bits. */
  preserveMode: boolean;
  /** On the replica's side: removed and replaced files go here (below a per-pass timestamp) instead of away. */
  backupDir?: string;
  maxDelete: MaxDelete;
  /** false: never remove anything from the replica. */
  delete: boolean;
}

export interface MirrorConfig extends CommonConfig {
  kind: 'mirror';
  /** An extra log file that gets every line at info and up (`log_file`, `--log FILE`). */
  logFile?: string;
  jobs: readonly MirrorJobConfig[];
}
