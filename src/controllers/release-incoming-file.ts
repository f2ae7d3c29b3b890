import { moveFile } from '../actions/move-file.js';
import { joinInside } from '../actions/safe-relative-path.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import { fsyncParentDir } from '../actions/sync-local-path.js';
import type { CopierConfig } from '../config/index.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';
import type { IncomingFile } from './list-incoming.js';

export interface ReleaseIncomingFileInput {
  config: CopierConfig;
  local: Storage;
  ledger: Ledger;
  file: IncomingFile;
  log: Logger;
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
  if (!current || current.sizeBytes !== file.sizeBytes || current.mtimeMs !== file.mtimeMs) {
    log.info(
      { relPath: file.relPath },
      `${file.relPath} changed in incoming after it was delivered: the new version waits for the next pass`,
    );
    return false;
  }
  if (config.doneDir !== undefined) {
    const moved = await moveFile({
      storage: local,
      fromPath: file.localPath,
      toPath: joinInside(config.doneDir, file.relPath),
      expected: file,
      ...(config.dirMode !== undefined ? { dirMode: config.dirMode } : {}),
    });
    if (moved.outcome === 'changed') return false;
    log.debug(
      { relPath: file.relPath, ...(moved.outcome === 'moved' ? { toPath: moved.toPath } : {}) },
      'moved to done_dir',
    );
  } else {
    await local.remove(file.localPath);
  }
  await fsyncParentDir(file.localPath);
  await ledger.forgetDeliveries(file);
  return true;
}
