import { posix } from 'node:path';
import { deleteFile } from '../actions/delete-file.js';
import { moveFile } from '../actions/move-file.js';
import type { SourceConfig } from '../config/index.js';
import { formatErrorLine, toSyncError } from '../errors/index.js';
import type { FetchRecord, Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';

export interface ApplyAfterFetchInput {
  source: SourceConfig;
  remote: Storage;
  ledger: Ledger;
  record: FetchRecord;
  log: Logger;
  dirMode?: number;
}

/**
 * The remote completion action, run only on a committed record (the file is in
 * incoming and, when configured, in the archive). A remote file that changed since
 * it was fetched is left alone: it is the partner's new version and will be fetched.
 * A failure is recorded and retried on the next pass without downloading again, as
 * long as the source still asks for that step.
 * Returns the error line on failure.
 */
export async function applyAfterFetch(input: ApplyAfterFetchInput): Promise<string | undefined> {
  const { source, remote, ledger, record, log } = input;
  if (record.afterFetch === 'keep' || record.afterFetchState === 'done') return undefined;
  const expected = { sizeBytes: record.sizeBytes, mtimeMs: record.mtimeMs };
  try {
    if (source.afterFetch !== record.afterFetch) {
      // A step left pending by an earlier run, under a config that has changed since: the
      // current config no longer says where (or whether) to move or delete. Left alone.
      log.warn(
        {
          source: source.name,
          remotePath: record.remotePath,
          was: record.afterFetch,
          now: source.afterFetch,
        },
        `left ${record.remotePath} on the server: its pending after_fetch ${record.afterFetch} was dropped, the source now says ${source.afterFetch}`,
      );
      await ledger.setAfterFetchState(record, 'done');
      return undefined;
    }
    if (record.afterFetch === 'delete') {
      const outcome = await deleteFile({ storage: remote, path: record.remotePath, expected });
      logOutcome(log, record, outcome);
      if (outcome !== 'changed' && source.verify === 'sidecar') {
        await followSidecar(input, () => deleteFile({ storage: remote, path: sidecarOf(record.remotePath) }));
      }
    } else {
      const relPath = posix.relative(source.remoteDir, record.remotePath);
      const toPath = posix.join(source.moveTo ?? '', relPath);
      const moved = await moveFile({
        storage: remote,
        fromPath: record.remotePath,
        toPath,
        expected,
        ...(input.dirMode !== undefined ? { dirMode: input.dirMode } : {}),
      });
      logOutcome(log, record, moved.outcome, moved.outcome === 'moved' ? moved.toPath : undefined);
      if (moved.outcome !== 'changed' && source.verify === 'sidecar') {
        const sidecarTo = sidecarOf(moved.outcome === 'moved' ? moved.toPath : toPath);
        await followSidecar(input, () =>
          moveFile({
            storage: remote,
            fromPath: sidecarOf(record.remotePath),
            toPath: sidecarTo,
            ...(input.dirMode !== undefined ? { dirMode: input.dirMode } : {}),
          }),
        );
      }
    }
    await ledger.setAfterFetchState(record, 'done');
    return undefined;
  } catch (err) {
    const error = toSyncError(err, {
      op: record.afterFetch === 'delete' ? 'delete remote' : 'move remote',
      path: record.remotePath,
      host: remote.label,
    });
    const line = formatErrorLine(error);
    log.warn(
      { source: source.name, remotePath: record.remotePath, err: error },
      `after_fetch ${record.afterFetch} failed, retried next pass: ${line}`,
    );
    await ledger.setAfterFetchState(record, 'pending', line);
    return line;
  }
}

function sidecarOf(remotePath: string): string {
  return `${remotePath}.sha256`;
}

/**
 * With `verify: sidecar` the `.sha256` beside a file goes where the file went. Its
 * failure is only a warning: the file itself is safe, and a lone sidecar is never
 * fetched.
 */
async function followSidecar(input: ApplyAfterFetchInput, step: () => Promise<unknown>): Promise<void> {
  try {
    await step();
  } catch (err) {
    const error = toSyncError(err, {
      op: 'sidecar after_fetch',
      path: sidecarOf(input.record.remotePath),
      host: input.remote.label,
    });
    input.log.warn(
      { source: input.source.name, err: error },
      `the sidecar did not follow its file: ${formatErrorLine(error)}`,
    );
  }
}

function logOutcome(log: Logger, record: FetchRecord, outcome: string, toPath?: string): void {
  if (outcome === 'changed') {
    log.warn(
      { source: record.source, remotePath: record.remotePath },
      `left ${record.remotePath} in place: it changed after it was fetched, so the new version will be fetched`,
    );
  } else {
    log.debug(
      { source: record.source, remotePath: record.remotePath, outcome, ...(toPath ? { toPath } : {}) },
      `after_fetch ${record.afterFetch}: ${outcome}`,
    );
  }
}
