import type { Storage } from '../storage/storage.js';

export interface DiskFreeInput {
  storage: Storage;
  path: string;
  /** Space that must stay free. */
  reserveBytes: number;
  /** Space already promised to transfers in flight. */
  inFlightBytes: number;
}

/**
 * Bytes that may still be written below `path` without going under the reserve; null
 * when the storage cannot tell (then nothing is refused for space).
 */
export async function diskFree(input: DiskFreeInput): Promise<number | null> {
  const freeBytes = await input.storage.freeSpace(input.path);
  if (freeBytes === null) return null;
  return freeBytes - input.reserveBytes - input.inFlightBytes;
}
