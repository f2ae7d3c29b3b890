import { diskFree } from '../actions/disk-free.js';
import type { Storage } from '../storage/storage.js';

export interface FreeSpaceBudgetOptions {
  storage: Storage;
  path: string;
  /** Space that must stay free (`min_free_space`). */
  reserveBytes: number;
  /** A measurement older than this is taken again before the next reservation. */
  maxAgeMs?: number;
  /** Once this many bytes were written since the last measurement, it is taken again. */
  maxWrittenBytes?: number;
  now?: () => number;
}

export interface FreeSpaceBudget {
  /** Reserves `sizeBytes` when they fit above the reserve and returns true; false (nothing reserved) when not. */
  reserve(sizeBytes: number): Promise<boolean>;
  /** Ends a reservation; `writtenBytes` now sit on the disk (0 when the transfer left nothing behind). */
  release(sizeBytes: number, writtenBytes: number): void;
}

const DEFAULT_MAX_AGE_MS = 5_000;
const DEFAULT_MAX_WRITTEN_BYTES = 1024 * 1024 * 1024;
/** A refusal from a measurement older than this measures again first: the disk may have room by now. */
const RECHECK_BEFORE_REFUSING_MS = 1_000;

/**
 * Free space for the transfers of one pass, without asking the file system for every
 * file (`check-disk-space` spawns `df`, ~7 ms): it is measured once, then again after
 * a time or a number of bytes written, and in between the bytes written since the
 * measurement and the bytes promised to transfers in flight are taken off. A file
 * that does not fit is refused only on a recent measurement. A storage that cannot
 * tell its free space refuses nothing.
 */
export function createFreeSpaceBudget(options: FreeSpaceBudgetOptions): FreeSpaceBudget {
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const maxWrittenBytes = options.maxWrittenBytes ?? DEFAULT_MAX_WRITTEN_BYTES;
  let measured: { freeBytes: number | null; atMs: number } | undefined;
  let measuring: Promise<void> | undefined;
  let writtenSinceBytes = 0;
  let inFlightBytes = 0;

  const measure = (): Promise<void> => {
    measuring ??= (async () => {
      try {
        // inFlightBytes 0: the figure is what is free now; promises are taken off below.
        const freeBytes = await diskFree({
          storage: options.storage,
          path: options.path,
          reserveBytes: 0,
          inFlightBytes: 0,
        });
        measured = { freeBytes, atMs: now() };
        // Bytes written before the measurement are in it; transfers still in flight stay promised
        // in full, though part of them is written already: the budget errs on the safe side.
        writtenSinceBytes = 0;
      } finally {
        measuring = undefined;
      }
    })();
    return measuring;
  };
  const stale = (): boolean =>
    measured === undefined || now() - measured.atMs > maxAgeMs || writtenSinceBytes > maxWrittenBytes;
  const fits = (sizeBytes: number): boolean => {
    const freeBytes = measured?.freeBytes;
    if (freeBytes === null || freeBytes === undefined) return true;
    return freeBytes - options.reserveBytes - writtenSinceBytes - inFlightBytes >= sizeBytes;
  };

  return {
    async reserve(sizeBytes) {
      if (stale()) await measure();
      if (!fits(sizeBytes) && measured !== undefined && now() - measured.atMs > RECHECK_BEFORE_REFUSING_MS)
        await measure();
      if (!fits(sizeBytes)) return false;
      inFlightBytes += sizeBytes;
      return true;
    },
    release(sizeBytes, writtenBytes) {
      inFlightBytes -= sizeBytes;
      writtenSinceBytes += writtenBytes;
    },
  };
}
