import { commitTemporary } from '../actions/commit-temporary.js';
import { statIfExists } from '../actions/stat-if-exists.js';
import { formatErrorLine, toSyncError } from '../errors/index.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';

export interface RecoverCommitsResult {
  /** Temporaries renamed into incoming now. */
  recovered: number;
  /** Temporaries of commits that could not be finished: they must survive the cleaning of leftovers. */
  unfinishedTempPaths: string[];
  /** One line per commit that could not be finished. */
  errors: string[];
}

/**
 * Finishes the commits a crash interrupted: a record marked "committing" whose
 * temporary still exists is renamed into incoming now; one whose temporary is gone
 * was renamed before the crash. Either way the record ends committed. Runs at the
 * start of a pass, before temporaries are cleaned. A commit that cannot be finished
 * (its folder denied, …) stays committing with its temporary kept, and is tried again
 * next pass; the others go on.
 */
export async function recoverCommits(input: {
  source: string;
  local: Storage;
  ledger: Ledger;
  log: Logger;
}): Promise<RecoverCommitsResult> {
  const pending = await input.ledger.pendingCommits(input.source);
  const result: RecoverCommitsResult = { recovered: 0, unfinishedTempPaths: [], errors: [] };
  for (const record of pending) {
    try {
      if (record.tempPath !== undefined && (await statIfExists(input.local, record.tempPath))) {
        // The name was free (or held this file's earlier version) when the record was written,
        // and nothing but the fetcher writes into incoming: replacing is what the commit meant.
        await commitTemporary({
          storage: input.local,
          tempPath: record.tempPath,
          targetPath: record.localPath,
          overwrite: true,
        });
        result.recovered += 1;
        input.log.info(
          { source: input.source, remotePath: record.remotePath, localPath: record.localPath },
          'finished a commit interrupted by a crash',
        );
      } else {
        input.log.info(
          { source: input.source, remotePath: record.remotePath, localPath: record.localPath },
          'confirmed a commit a crash interrupted after its rename',
        );
      }
      await input.ledger.markCommitted(record);
    } catch (err) {
      const error = toSyncError(err, {
        op: 'finish an interrupted commit',
        path: record.localPath,
        source: input.source,
      });
      if (record.tempPath !== undefined) result.unfinishedTempPaths.push(record.tempPath);
      result.errors.push(formatErrorLine(error));
      input.log.error(
        { source: input.source, remotePath: record.remotePath, localPath: record.localPath, err: error },
        `cannot finish a commit interrupted by a crash (tried again next pass): ${formatErrorLine(error)}`,
      );
    }
  }
  return result;
}
