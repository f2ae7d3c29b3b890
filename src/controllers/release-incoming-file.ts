import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { moveFile } from '../actions/move-file.js';
import { joinInside } from '../actions/safe-relative-path.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import type { SyncFolder } from '../actions/shared-folder-sync.js';
import { fsyncDir } from '../actions/sync-local-path.js';
import type { CopierConfig } from '../config/index.js';
import { formatErrorLine, SyncError } from '../errors/index.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage, StorageStat } from '../storage/storage.js';
import type { IncomingFile } from './list-incoming.js';

export interface ReleaseIncomingFileInput {
  config: CopierConfig;
  local: Storage;
  ledger: Ledger;
  file: IncomingFile;
  log: Logger;
  /** Syncs incoming's folder after the removal; may be shared by the releases of a pass. */
  syncFolder?: SyncFolder;
}

/**
 * Takes a file out of incoming once every destination holds it: removed, or moved to
 * `done_dir`. Only the version that was delivered is released — if the fetcher
 * replaced it meanwhile (a changed remote file), the new version stays for the next
 * pass. Its delivery rows are forgotten afterwards. Returns whether it left incoming.
 */
export async function releaseIncomingFile(input: ReleaseIncomingFileInput): Promise<boolean> {
  const { config, local, ledger, file, log } = input;
  const current = await statIfExists(local, file.localPath);
  if (!isDeliveredVersion(current, file)) {
    logChanged(log, file);
    return false;
  }
  const released =
    config.doneDir === undefined
      ? await removeDelivered(local, file, log)
      : await moveDelivered(local, file, config.doneDir, config.dirMode, log);
  if (!released) return false;
  await (input.syncFolder ?? fsyncDir)(dirname(file.localPath));
  await ledger.forgetDeliveries(file);
  return true;
}

/**
 * The fetcher may rename a new version onto the name between our check and the
 * removal. So the file is first renamed aside (one atomic step that takes whatever
 * holds the name), checked again, and only then removed; a new version caught this
 * way goes back under its name. A crash in between leaves the aside name, which the
 * next pass puts back (`recoverReleaseLeftovers`).
 */
async function removeDelivered(local: Storage, file: IncomingFile, log: Logger): Promise<boolean> {
  const asidePath = releaseAsidePath(file.localPath);
  if (asidePath === undefined) {
    // A name too long to carry a suffix: the plain removal, with its tiny window.
    await local.remove(file.localPath);
    return true;
  }
  try {
    await local.rename(file.localPath, asidePath, { overwrite: true });
  } catch (err) {
    if (err instanceof SyncError && err.code === 'E_NOT_FOUND') return false;
    throw err;
  }
  // The name ends in `.part`, so the fetcher's clean-up of temporaries may take it at any
  // moment from here on: gone counts as removed.
  const aside = await statIfExists(local, asidePath);
  if (aside === undefined) return true;
  if (isDeliveredVersion(aside, file)) {
    await local.remove(asidePath).catch((err: unknown) => {
      if (!(err instanceof SyncError && err.code === 'E_NOT_FOUND')) throw err;
    });
    return true;
  }
  await putBack(local, asidePath, file.localPath);
  logChanged(log, file);
  return false;
}

async function moveDelivered(
  local: Storage,
  file: IncomingFile,
  doneDir: string,
  dirMode: number | undefined,
  log: Logger,
): Promise<boolean> {
  const moved = await moveFile({
    storage: local,
    fromPath: file.localPath,
    toPath: joinInside(doneDir, file.relPath),
    expected: file,
    ...(dirMode !== undefined ? { dirMode } : {}),
  });
  if (moved.outcome !== 'moved') {
    if (moved.outcome === 'changed') logChanged(log, file);
    return false;
  }
  // As above: a new version renamed in after moveFile's check was moved instead; it goes back.
  const landed = await statIfExists(local, moved.toPath);
  if (!isDeliveredVersion(landed, file)) {
    await putBack(local, moved.toPath, file.localPath);
    logChanged(log, file);
    return false;
  }
  log.debug({ relPath: file.relPath, toPath: moved.toPath }, 'moved to done_dir');
  return true;
}

/** Returns an undelivered version to incoming; if a newer one took the name meanwhile, ours is outdated. */
async function putBack(local: Storage, fromPath: string, localPath: string): Promise<void> {
  try {
    await local.rename(fromPath, localPath, { overwrite: false });
  } catch (err) {
    if (!(err instanceof SyncError && err.code === 'E_EXISTS')) throw err;
    await local.remove(fromPath);
  }
}

const ASIDE_PATTERN = /^\.(.+)\.[0-9a-f]{8}\.release\.part$/;
/** Room for the dot, the random part and `.release.part` within a 255-byte name. */
const MAX_ASIDE_STEM_BYTES = 230;

/**
 * `dir/report.csv` → `dir/.report.csv.1a2b3c4d.release.part`: hidden and ending in
 * `.part` like every temporary (never listed as a file), yet never a name the
 * fetcher's temporaries take (theirs end in the random part). Undefined for a name
 * too long to extend.
 */
export function releaseAsidePath(localPath: string): string | undefined {
  const name = basename(localPath);
  if (Buffer.byteLength(name) > MAX_ASIDE_STEM_BYTES) return undefined;
  return join(dirname(localPath), `.${name}.${randomBytes(4).toString('hex')}.release.part`);
}

/** The name a release leftover came from, or undefined when `name` is not one. */
export function releasedNameOf(name: string): string | undefined {
  return ASIDE_PATTERN.exec(name)?.[1];
}

export interface RecoverReleaseLeftoversInput {
  local: Storage;
  /** Absolute paths of leftovers found in incoming (names matching `releasedNameOf`). */
  leftoverPaths: readonly string[];
  log: Logger;
}

/**
 * Files a crash caught between "renamed aside" and "removed". Each goes back under
 * its name, where the next listing finds it: the ledger still knows where it was
 * delivered, so it is released without copying again (and a new version caught by
 * the race gets delivered). If the name is taken by a newer file, the leftover is
 * outdated and removed.
 */
export async function recoverReleaseLeftovers(input: RecoverReleaseLeftoversInput): Promise<number> {
  let recovered = 0;
  for (const leftoverPath of input.leftoverPaths) {
    const name = releasedNameOf(basename(leftoverPath));
    if (name === undefined) continue;
    try {
      await putBack(input.local, leftoverPath, join(dirname(leftoverPath), name));
      recovered += 1;
    } catch (err) {
      input.log.warn(
        { path: leftoverPath, err },
        `cannot put back a file a crash left renamed aside in incoming: ${formatErrorLine(err)}`,
      );
    }
  }
  if (recovered > 0) {
    input.log.info(
      { count: recovered, examples: input.leftoverPaths.slice(0, 5) },
      `put back ${recovered} file(s) an interrupted release left renamed aside in incoming`,
    );
  }
  return recovered;
}

function isDeliveredVersion(current: StorageStat | undefined, file: IncomingFile): boolean {
  return (
    current !== undefined &&
    current.type === 'file' &&
    current.sizeBytes === file.sizeBytes &&
    current.mtimeMs === file.mtimeMs
  );
}

function logChanged(log: Logger, file: IncomingFile): void {
  log.info(
    { relPath: file.relPath },
    `${file.relPath} changed in incoming after it was delivered: the new version waits for the next pass`,
  );
}
