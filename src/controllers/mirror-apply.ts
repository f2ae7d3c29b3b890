import { posix } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { copyLink } from '../actions/copy-link.js';
import { deleteFile } from '../actions/delete-file.js';
import { moveFile } from '../actions/move-file.js';
import { removeFolder } from '../actions/remove-folder.js';
import { joinInside } from '../actions/safe-relative-path.js';
import { fsyncDir } from '../actions/sync-local-path.js';
import { transferFile } from '../actions/transfer-file.js';
import type { MirrorJobConfig } from '../config/index.js';
import {
  formatErrorLine,
  isTargetDown,
  retryWithBackoff,
  type SyncError,
  toSyncError,
} from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';
import type { MirrorEntry } from './mirror-listing.js';
import type { MirrorPlan, PlannedCreations, PlannedTouch, PlannedWrite } from './mirror-plan.js';
import { noteFileError, noteSkip, type PassReport } from './pass-report.js';

/** What one pass did to one replica, by event. */
export interface MirrorCounts {
  created: number;
  updated: number;
  copied: number;
  removed: number;
  backedUp: number;
  foldersCreated: number;
  foldersRemoved: number;
}

export type MirrorEvent =
  | 'created'
  | 'updated'
  | 'copied'
  | 'removed'
  | 'backed_up'
  | 'folder_created'
  | 'folder_removed';

export interface ApplyMirrorInput {
  job: MirrorJobConfig;
  source: Storage;
  replica: Storage;
  plan: MirrorPlan;
  /** Source sha256 by path, when compare: checksum hashed it. */
  sourceSha256: ReadonlyMap<string, string>;
  /** Removals are skipped (and `after`, which waits for them): the reason, logged once. */
  noDeletions?: string;
  limit: LimitFunction;
  log: Logger;
  report: PassReport;
  counts: MirrorCounts;
  /** Per-pass folder below backup_dir, e.g. `2026-05-14T101500Z`. */
  backupStamp: string;
  fileMode?: number;
  dirMode?: number;
  /** Attempts after a transient fault, for an SFTP end. */
  retries: number;
  /** Start nothing new once aborted. */
  stopSignal: AbortSignal;
  /** Cuts transfers in flight. */
  abortSignal: AbortSignal;
}

const PERMISSION_BITS = 0o7777;

/**
 * Applies a plan in its order: folders, then files and links (under the shared
 * p-limit cap), then metadata, then — unless the replica went down or a stop was
 * asked for — removals (files first, then folders deepest first), and finally what
 * needed the names those removals freed. Each operation is one structured event line.
 */
export async function applyMirrorPlan(input: ApplyMirrorInput): Promise<{ down?: SyncError }> {
  const state = new ApplyState(input);
  const result = () => (state.down ? { down: state.down } : {});
  await state.create(input.plan.before);
  await state.all(input.plan.touches, (touch) => state.touch(touch));
  if (input.noDeletions !== undefined) return result();
  if (state.stopped()) {
    const skipped =
      input.plan.removals.length + input.plan.dirRemovals.length + input.plan.after.writes.length;
    input.report.waiting += skipped;
    if (skipped > 0) {
      input.log.warn(
        { job: input.job.name },
        `${input.job.name}: ${skipped} removal(s) left for the next pass: ${state.down ? formatErrorLine(state.down) : 'stopping'}`,
      );
    }
    return result();
  }
  await state.all(input.plan.removals, (entry) => state.remove(entry));
  await state.removeDirs(input.plan.dirRemovals);
  await state.create(input.plan.after);
  return result();
}

class ApplyState {
  down: SyncError | undefined;
  private readonly writtenFolders = new Set<string>();

  constructor(private readonly input: ApplyMirrorInput) {}

  stopped(): boolean {
    return this.down !== undefined || this.input.stopSignal.aborted;
  }

  async all<T>(items: readonly T[], run: (item: T) => Promise<void>): Promise<void> {
    await Promise.all(
      items.map((item) => this.input.limit(() => (this.stopped() ? this.wait() : run(item)))),
    );
  }

  async create(creations: PlannedCreations): Promise<void> {
    // Folders level by level: a folder exists before anything is made in it.
    for (const level of byDepth(creations.dirs)) await this.all(level, (dir) => this.mkdir(dir));
    await this.all(creations.writes, (write) => this.write(write));
    await this.syncWrittenFolders();
  }

  /**
   * Each local folder written into is synced once, after its files: the renames into
   * it are then durable. (Each file was synced before its rename; a rename lost in a
   * crash only leaves the old file and a temporary, which the next pass redoes.)
   */
  private async syncWrittenFolders(): Promise<void> {
    const { job, limit, log } = this.input;
    const folders = [...this.writtenFolders];
    this.writtenFolders.clear();
    await Promise.all(
      folders.map((folder) =>
        limit(() =>
          fsyncDir(folder).catch((err: unknown) =>
            log.warn({ job: job.name, path: folder, err }, `${job.name}: cannot sync folder ${folder}`),
          ),
        ),
      ),
    );
  }

  async removeDirs(dirs: readonly MirrorEntry[]): Promise<void> {
    for (const level of byDepth(dirs).reverse()) await this.all(level, (dir) => this.removeDir(dir));
  }

  private wait(): Promise<void> {
    this.input.report.waiting += 1;
    return Promise.resolve();
  }

  private replicaPath(relPath: string): string {
    return pathIn(this.input.replica, this.input.job.replica.path, relPath);
  }

  private event(event: MirrorEvent, relPath: string, fields: Record<string, unknown> = {}): void {
    const { job, log, report } = this.input;
    report.done += 1;
    log.info(
      { event, job: job.name, relPath, ...fields },
      `${job.name}: ${event.replace('_', ' ')} ${relPath}`,
    );
  }

  private async mkdir(dir: MirrorEntry): Promise<void> {
    const { replica, job, dirMode } = this.input;
    const path = this.replicaPath(dir.relPath);
    await this.guard(dir.relPath, 'create folder', async () => {
      const mode = job.preserveMode ? dir.mode & PERMISSION_BITS : dirMode;
      await replica.mkdirp(path, mode === undefined ? {} : { mode });
      // mkdir applies the umask; preserved bits must be exact.
      if (job.preserveMode && mode !== undefined) await replica.setMode(path, mode);
      this.input.counts.foldersCreated += 1;
      this.event('folder_created', dir.relPath);
    });
  }

  private async write(write: PlannedWrite): Promise<void> {
    const { job, source, replica, counts, report } = this.input;
    const { relPath } = write;
    await this.guard(relPath, 'copy', async () => {
      if (write.replaced && job.backupDir !== undefined) await this.backUp(write.replaced, false);
      const dstPath = this.replicaPath(relPath);
      if (write.source.type === 'link') {
        const target = write.source.linkTarget ?? '';
        await copyLink({ dst: replica, dstPath, target, ...this.dirModeOption() });
        counts.copied += 1;
        this.event('copied', relPath, { type: 'link', target });
        return;
      }
      const sha256 = this.input.sourceSha256.get(relPath);
      const fileMode = job.preserveMode ? write.source.mode & PERMISSION_BITS : this.input.fileMode;
      const copied = await retryWithBackoff(
        () =>
          transferFile({
            src: source,
            srcPath: pathIn(source, job.source.path, relPath),
            listed: {
              sizeBytes: write.source.sizeBytes,
              mtimeMs: write.source.mtimeMs,
              ...(sha256 !== undefined ? { sha256 } : {}),
            },
            dst: replica,
            dstPath,
            syncFolder: false,
            ...(fileMode !== undefined ? { fileMode } : {}),
            ...this.dirModeOption(),
            signal: this.input.abortSignal,
          }),
        {
          retries: this.input.retries,
          baseDelayMs: 1_000,
          maxDelayMs: 30_000,
          signal: this.input.abortSignal,
          onRetry: (err, attempt, delayMs) =>
            this.input.log.warn(
              { job: job.name, relPath, attempt, delayMs, err },
              `${job.name}: copy of ${relPath} failed, retrying: ${formatErrorLine(err)}`,
            ),
        },
      );
      if (replica.kind === 'local') this.writtenFolders.add(posix.dirname(dstPath));
      report.bytes += copied.sizeBytes;
      const event = write.replaced ? 'updated' : 'created';
      counts[event] += 1;
      this.event(event, relPath, {
        sizeBytes: copied.sizeBytes,
        mtime: new Date(write.source.mtimeMs).toISOString(),
      });
    });
  }

  async touch(touch: PlannedTouch): Promise<void> {
    const { replica } = this.input;
    await this.guard(touch.relPath, 'set times', async () => {
      const path = this.replicaPath(touch.relPath);
      if (touch.mode !== undefined) await replica.setMode(path, touch.mode);
      if (touch.mtimeMs !== undefined) await replica.setTimes(path, touch.mtimeMs);
      if (touch.type === 'file') this.input.counts.updated += 1;
      this.event('updated', touch.relPath, {
        metadataOnly: true,
        ...(touch.mode !== undefined ? { mode: touch.mode.toString(8).padStart(4, '0') } : {}),
        ...(touch.mtimeMs !== undefined ? { mtime: new Date(touch.mtimeMs).toISOString() } : {}),
      });
    });
  }

  async remove(entry: MirrorEntry): Promise<void> {
    const { replica, job, report } = this.input;
    await this.guard(entry.relPath, 'remove', async () => {
      if (job.backupDir !== undefined) {
        await this.backUp(entry, true);
        return;
      }
      const outcome = await deleteFile({
        storage: replica,
        path: this.replicaPath(entry.relPath),
        ...expectedOf(entry),
      });
      if (outcome === 'changed') {
        report.skipped += 1;
        noteSkip(report, 'changed in the replica since it was listed: left for the next pass', entry.relPath);
        return;
      }
      if (outcome === 'deleted') {
        this.input.counts.removed += 1;
        this.event('removed', entry.relPath, { type: entry.type });
      }
    });
  }

  private async removeDir(dir: MirrorEntry): Promise<void> {
    const { replica, report } = this.input;
    await this.guard(dir.relPath, 'remove folder', async () => {
      const outcome = await removeFolder(replica, this.replicaPath(dir.relPath));
      if (outcome === 'not-empty') {
        report.skipped += 1;
        noteSkip(
          report,
          'a folder that is no longer empty (written meanwhile): left for the next pass',
          dir.relPath,
        );
      } else if (outcome === 'removed') {
        this.input.counts.foldersRemoved += 1;
        this.event('folder_removed', dir.relPath);
      }
    });
  }

  /**
   * Moves a replica entry into `backup_dir/<pass stamp>/<relPath>`. As a removal, it
   * is left alone if it changed since it was listed; as the old version of a file
   * about to be replaced, whatever is there is kept.
   */
  private async backUp(entry: MirrorEntry, asRemoval: boolean): Promise<void> {
    const { replica, job, report } = this.input;
    const backupDir = job.backupDir ?? '';
    const toPath =
      replica.kind === 'local'
        ? joinInside(joinInside(backupDir, this.input.backupStamp), entry.relPath)
        : posix.join(backupDir, this.input.backupStamp, entry.relPath);
    const moved = await moveFile({
      storage: replica,
      fromPath: this.replicaPath(entry.relPath),
      toPath,
      ...(asRemoval ? expectedOf(entry) : {}),
      ...this.dirModeOption(),
    });
    if (moved.outcome === 'changed') {
      report.skipped += 1;
      noteSkip(report, 'changed in the replica since it was listed: left for the next pass', entry.relPath);
      return;
    }
    if (moved.outcome === 'moved') {
      this.input.counts.backedUp += 1;
      this.event('backed_up', entry.relPath, { type: entry.type, backupPath: moved.toPath });
    }
  }

  private dirModeOption(): { dirMode?: number } {
    return this.input.dirMode === undefined ? {} : { dirMode: this.input.dirMode };
  }

  /** Runs one operation; a failure is counted against the file, or takes the whole replica down. */
  private async guard(relPath: string, op: string, run: () => Promise<void>): Promise<void> {
    const { job, log, report } = this.input;
    if (this.stopped()) {
      report.waiting += 1;
      return;
    }
    try {
      await run();
    } catch (err) {
      const error = toSyncError(err, { op, path: relPath, job: job.name });
      if (error.code === 'E_ABORTED' || this.input.abortSignal.aborted) {
        report.waiting += 1;
      } else if (error.code === 'E_CHANGED') {
        report.waiting += 1;
        noteSkip(report, 'changed in the source while it was copied: copied on the next pass', relPath);
      } else if (error.code === 'E_NOT_FOUND' && op === 'copy') {
        report.waiting += 1;
        noteSkip(report, 'gone from the source since it was listed: mirrored on the next pass', relPath);
      } else if (isTargetDown(error.code)) {
        report.waiting += 1;
        if (!this.down) {
          this.down = error;
          log.error(
            { job: job.name, err: error },
            `${job.name}: stopping this pass: ${formatErrorLine(error)}`,
          );
        }
      } else {
        noteFileError(report, formatErrorLine(error));
        log.error(
          { job: job.name, relPath, err: error },
          `${job.name}: cannot ${op} ${relPath}: ${formatErrorLine(error)}`,
        );
      }
    }
  }
}

/**
 * The guard against removing a file replaced since it was listed: its size and mtime.
 * Links are removed as they are (the actions compare a link by what it points at).
 */
function expectedOf(entry: MirrorEntry): { expected?: { sizeBytes: number; mtimeMs: number } } {
  return entry.type === 'file' ? { expected: { sizeBytes: entry.sizeBytes, mtimeMs: entry.mtimeMs } } : {};
}

/** A path below an end's root: checked to stay inside it on the local disk. */
export function pathIn(storage: Storage, rootPath: string, relPath: string): string {
  if (relPath === '' || relPath === '.') return rootPath;
  return storage.kind === 'local' ? joinInside(rootPath, relPath) : posix.join(rootPath, relPath);
}

/** Entries grouped by depth, shallowest first. */
function byDepth(entries: readonly MirrorEntry[]): MirrorEntry[][] {
  const levels = new Map<number, MirrorEntry[]>();
  for (const entry of entries) {
    const depth = entry.relPath.split('/').length;
    const level = levels.get(depth) ?? [];
    level.push(entry);
    levels.set(depth, level);
  }
  return [...levels.entries()].sort(([a], [b]) => a - b).map(([, level]) => level);
}
