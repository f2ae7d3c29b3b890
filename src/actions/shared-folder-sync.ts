import { fsyncDir } from './sync-local-path.js';

/** Syncs a local folder so that renames into it survive a crash of the machine. */
export type SyncFolder = (localDirPath: string) => Promise<void>;

interface FolderState {
  running?: Promise<void> | undefined;
  queued?: Promise<void> | undefined;
}

/**
 * Folder syncs shared between the commits of one pass. A commit renames its file,
 * then needs a sync of the folder that STARTED after its rename. When none is running
 * for that folder one starts at once; when one is (it may have started before the
 * rename) the commit waits for the next, which starts as soon as the running one ends
 * and serves every commit that arrived meanwhile. So a folder taking many files at once
 * is synced a few times, not once per file, and no commit resolves on a sync older than
 * its rename. A failed sync fails every commit that waited on it.
 */
export function createSharedFolderSync(syncDir: SyncFolder = fsyncDir): SyncFolder {
  const folders = new Map<string, FolderState>();
  const start = (dirPath: string, state: FolderState): Promise<void> => {
    const run: Promise<void> = syncDir(dirPath).finally(() => {
      if (state.running === run) state.running = undefined;
      if (state.running === undefined && state.queued === undefined) folders.delete(dirPath);
    });
    state.running = run;
    return run;
  };
  return (dirPath) => {
    let state = folders.get(dirPath);
    if (state === undefined) {
      state = {};
      folders.set(dirPath, state);
    }
    const current = state;
    if (current.running === undefined) return start(dirPath, current);
    current.queued ??= current.running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        current.queued = undefined;
        return start(dirPath, current);
      });
    return current.queued;
  };
}
