import { describe, expect, it } from 'vitest';
import { createFreeSpaceBudget } from '../../../src/controllers/free-space-budget.js';
import type { Storage } from '../../../src/storage/storage.js';

const MiB = 1024 * 1024;

/** Only freeSpace is asked of the storage; every measurement is counted. */
function diskWith(freeBytes: number | null) {
  const disk = {
    freeBytes,
    measurements: 0,
    storage: {
      freeSpace: () => {
        disk.measurements += 1;
        return Promise.resolve(disk.freeBytes);
      },
    } as unknown as Storage,
  };
  return disk;
}

describe('free space budget', () => {
  it('measures once for many files, and counts what is in flight and written against it', async () => {
    const disk = diskWith(100 * MiB);
    let nowMs = 0;
    const budget = createFreeSpaceBudget({
      storage: disk.storage,
      path: '/in',
      reserveBytes: 10 * MiB,
      now: () => nowMs,
    });
    // 90 MiB above the reserve.
    expect(await Promise.all([budget.reserve(40 * MiB), budget.reserve(40 * MiB)])).toEqual([true, true]);
    expect(await budget.reserve(20 * MiB)).toBe(false);
    budget.release(40 * MiB, 40 * MiB); // written: still takes its room
    expect(await budget.reserve(20 * MiB)).toBe(false);
    budget.release(40 * MiB, 0); // failed, nothing left behind
    expect(await budget.reserve(20 * MiB)).toBe(true);
    expect(disk.measurements).toBe(1);
    nowMs += 500;
    expect(await budget.reserve(1 * MiB)).toBe(true);
    expect(disk.measurements).toBe(1);
  });

  it('measures again after a while, after many bytes written, and before refusing on an old figure', async () => {
    const disk = diskWith(100 * MiB);
    let nowMs = 0;
    const budget = createFreeSpaceBudget({
      storage: disk.storage,
      path: '/in',
      reserveBytes: 0,
      maxAgeMs: 5_000,
      maxWrittenBytes: 50 * MiB,
      now: () => nowMs,
    });
    expect(await budget.reserve(60 * MiB)).toBe(true);
    budget.release(60 * MiB, 60 * MiB);
    // 60 MiB written since the measurement: over maxWrittenBytes, so the disk is asked again.
    disk.freeBytes = 40 * MiB;
    expect(await budget.reserve(30 * MiB)).toBe(true);
    expect(disk.measurements).toBe(2);
    budget.release(30 * MiB, 0);
    nowMs += 6_000;
    disk.freeBytes = 5 * MiB;
    expect(await budget.reserve(10 * MiB)).toBe(false);
    expect(disk.measurements).toBe(3);
    // Space freed meanwhile (the copier delivered files): a refusal on a 2 s old figure looks again.
    nowMs += 2_000;
    disk.freeBytes = 500 * MiB;
    expect(await budget.reserve(10 * MiB)).toBe(true);
    expect(disk.measurements).toBe(4);
  });

  it('refuses nothing when the storage cannot tell its free space', async () => {
    const disk = diskWith(null);
    const budget = createFreeSpaceBudget({ storage: disk.storage, path: '/in', reserveBytes: 1024 * MiB });
    expect(await budget.reserve(10_000 * MiB)).toBe(true);
  });
});
