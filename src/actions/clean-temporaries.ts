import type { Storage } from '../storage/storage.js';
import { joinInside } from './safe-relative-path.js';
import { isTemporaryName } from './temporary-name.js';

export interface CleanTemporariesInput {
  storage: Storage;
  dirPath: string;
  /** Temporaries to keep (absolute paths), e.g. those a recorded commit still needs. */
  keep?: ReadonlySet<string>;
  signal?: AbortSignal;
  onError?: (error: Error, path: string) => void;
}

/**
 * Removes every leftover temporary (`.name….part`) below `dirPath`: what a crash or a
 * kill left behind. Returns the paths removed. Must run only while no transfer of
 * this process writes below `dirPath`.
 */
export async function cleanTemporaries(input: CleanTemporariesInput): Promise<string[]> {
  const removed: string[] = [];
  const listOptions = {
    recursive: true,
    ...(input.signal ? { signal: input.signal } : {}),
    onError: (error: Error, relPath: string) => input.onError?.(error, relPath),
  };
  for await (const entry of input.storage.list(input.dirPath, listOptions)) {
    if (entry.type === 'dir' || !isTemporaryName(entry.name)) continue;
    const path = joinInside(input.dirPath, entry.relPath);
    if (input.keep?.has(path)) continue;
    try {
      await input.storage.remove(path);
      removed.push(path);
    } catch (err) {
      input.onError?.(err as Error, path);
    }
  }
  return removed;
}
