import { posix } from 'node:path';
import { unsafePathReason } from '../actions/safe-relative-path.js';
import { isTemporaryName } from '../actions/temporary-name.js';
import type { IncomingFileKey } from '../ledger/ledger.js';
import type { Logger } from '../log/index.js';
import type { Storage } from '../storage/storage.js';
import { releasedNameOf } from './release-incoming-file.js';

export interface IncomingFile extends IncomingFileKey {
  /** Absolute local path. */
  localPath: string;
}

export interface ListIncomingInput {
  local: Storage;
  incoming: string;
  minAgeMs: number;
  nowMs: number;
  log: Logger;
  signal?: AbortSignal;
  /** Folders below incoming never to list (e.g. `done_dir` or `unmatched_dir` placed inside it). */
  skipDirs?: readonly string[];
}

export interface IncomingListing {
  files: IncomingFile[];
  /** Files left for a later pass because they are younger than `min_age`. */
  tooYoung: number;
  /** Whether every folder could be read: only then may stale ledger rows be pruned. */
  complete: boolean;
  /** Absolute paths of files an interrupted release left renamed aside (see `recoverReleaseLeftovers`). */
  releaseLeftovers: string[];
}

/** Names in incoming that are work in progress (temporaries): never listed, and no news to a watcher. */
export function isTemporaryInIncoming(name: string): boolean {
  return isTemporaryName(name);
}

/**
 * The files waiting in incoming: temporaries (`.name….part`) never, links and special
 * files never, files younger than `min_age` not yet (a producer may still be writing
 * them in place).
 */
export async function listIncoming(input: ListIncomingInput): Promise<IncomingListing> {
  const files: IncomingFile[] = [];
  let tooYoung = 0;
  let complete = true;
  const releaseLeftovers: string[] = [];
  const skip = new Set((input.skipDirs ?? []).map((dir) => posix.relative(input.incoming, dir)));
  const listing = input.local.list(input.incoming, {
    recursive: true,
    skipDir: (relPath) => skip.has(relPath),
    ...(input.signal ? { signal: input.signal } : {}),
    onError: (error, relPath) => {
      complete = false;
      input.log.warn({ folder: relPath, err: error }, `cannot list a folder in incoming: ${error.message}`);
    },
  });
  for await (const entry of listing) {
    if (entry.type !== 'file') continue;
    if (isTemporaryName(entry.name)) {
      if (releasedNameOf(entry.name) !== undefined)
        releaseLeftovers.push(posix.join(input.incoming, entry.relPath));
      continue;
    }
    if (unsafePathReason(entry.relPath)) {
      input.log.warn(
        { relPath: entry.relPath },
        'a file in incoming has a name that cannot be copied safely: left where it is',
      );
      continue;
    }
    if (input.nowMs - entry.mtimeMs < input.minAgeMs) {
      tooYoung += 1;
      continue;
    }
    files.push({
      relPath: entry.relPath,
      sizeBytes: entry.sizeBytes,
      mtimeMs: entry.mtimeMs,
      localPath: posix.join(input.incoming, entry.relPath),
    });
  }
  return { files, tooYoung, complete, releaseLeftovers };
}
