import { commitTemporary } from '../actions/commit-temporary.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';

/**
 * Finishes the commits a crash interrupted: a record marked "committing" whose
 * temporary still exists is renamed into incoming now; one whose temporary is gone
 * was renamed before the crash. Either way the record ends committed. Runs at the
 * start of a pass, before temporaries are cleaned.
 */
export async function recoverCommits(input: {
  source: string;
  local: Storage;
  ledger: Ledger;
  log: Logger;
}): Promise<number> {
  const pending = await input.ledger.pendingCommits(input.source);
  let recovered = 0;
  for (const record of pending) {
    if (record.tempPath !== undefined && (await statIfExists(input.local, record.tempPath))) {
      await commitTemporary({
        storage: input.local,
        tempPath: record.tempPath,
        targetPath: record.localPath,
        overwrite: true,
      });
      recovered += 1;
      input.log.info(
        { source: input.source, localPath: record.localPath },
        'finished a commit interrupted by a crash',
      );
    }
    await input.ledger.markCommitted(record);
  }
  return recovered;
}
