import { type FSWatcher, watch } from 'node:fs';
import { basename } from 'node:path';
import type { Logger } from '../log/index.js';

export interface FolderWatch {
  /** Resolves after `delayMs` (the safety-net full pass), or soon after something changes in the folder. */
  waitForNextPass(delayMs: number, signal: AbortSignal): Promise<void>;
  close(): void;
}

export interface WatchFolderOptions {
  /** Names whose changes start no pass (temporaries being written). */
  ignoreName?: (name: string) => boolean;
}

/** Changes are gathered this long before a pass starts, so a burst of new files makes one pass. */
const SETTLE_MS = 250;

/**
 * Watches a folder tree (fs.watch, recursive) so the copier reacts to new files at
 * once instead of waiting for the interval. The interval still runs a full pass as
 * a safety net: watch events can be lost (overflow, network file systems).
 */
export function watchFolder(dirPath: string, log: Logger, options: WatchFolderOptions = {}): FolderWatch {
  let changed = false;
  let wake: (() => void) | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirPath, { recursive: true, persistent: false }, (_event, fileName) => {
      // A download in progress writes its temporary many times a second: only its final
      // rename (an event on the real name) is news.
      if (fileName !== null && options.ignoreName?.(basename(fileName))) return;
      changed = true;
      wake?.();
    });
    watcher.on('error', (err) => {
      log.warn({ dirPath, err }, 'watching incoming failed: falling back to the interval');
      watcher?.close();
      watcher = undefined;
    });
  } catch (err) {
    log.warn({ dirPath, err }, 'cannot watch incoming: falling back to the interval');
  }

  return {
    waitForNextPass(delayMs, signal) {
      return new Promise((resolve) => {
        let settleTimer: NodeJS.Timeout | undefined;
        const finish = (): void => {
          clearTimeout(timer);
          clearTimeout(settleTimer);
          signal.removeEventListener('abort', finish);
          wake = undefined;
          changed = false;
          resolve();
        };
        const timer = setTimeout(finish, delayMs);
        signal.addEventListener('abort', finish, { once: true });
        wake = () => {
          settleTimer ??= setTimeout(finish, SETTLE_MS);
        };
        if (changed || signal.aborted) wake();
      });
    },
    close() {
      watcher?.close();
    },
  };
}
