/**
 * The watch behind `watch: true`, on a real folder: a finished file (renamed in)
 * ends the wait soon; a temporary being written does not; a change made while no one
 * waits (during a pass) is not lost.
 */
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FolderWatch, watchFolder } from '../../../src/apps/watch-folder.js';
import { isTemporaryInIncoming } from '../../../src/controllers/list-incoming.js';
import { captureLogger } from '../../support/capture-logger.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function timedWait(
  watch: FolderWatch,
  delayMs: number,
  signal = new AbortController().signal,
): Promise<number> {
  const startedMs = Date.now();
  await watch.waitForNextPass(delayMs, signal);
  return Date.now() - startedMs;
}

describe('watchFolder', () => {
  let temp: TempDir;
  let watch: FolderWatch;

  beforeEach(async () => {
    temp = await makeTempDir('watch-folder-');
    watch = watchFolder(temp.path, captureLogger().log, { ignoreName: isTemporaryInIncoming });
  });
  afterEach(async () => {
    watch?.close();
    await temp?.remove();
  });

  it('a temporary being written starts no pass; its rename into place does, soon', async () => {
    await mkdir(join(temp.path, 'partner'));
    await sleep(50);
    const tempPath = join(temp.path, 'partner', '.big.bin.0a1b2c3d.part');
    await writeFile(tempPath, 'x');
    const writer = (async () => {
      for (let i = 0; i < 20; i += 1) {
        await appendFile(tempPath, 'more bytes\n');
        await sleep(25);
      }
      await rename(tempPath, join(temp.path, 'partner', 'big.bin'));
    })();
    // The mkdir above is news; let that wait pass first.
    await timedWait(watch, 300);
    const waitedMs = await timedWait(watch, 5_000);
    await writer;
    // 20 writes of 25 ms ≈ 500 ms, then the rename, then the 250 ms settle time.
    expect(waitedMs).toBeGreaterThanOrEqual(500);
    expect(waitedMs).toBeLessThan(1_500);
  });

  it('a change while nobody waits (during a pass) ends the next wait at once', async () => {
    await writeFile(join(temp.path, 'arrived.csv'), 'a');
    await sleep(100);
    expect(await timedWait(watch, 5_000)).toBeLessThan(1_000);
    // Nothing new: the full delay (the safety-net pass) runs out.
    expect(await timedWait(watch, 400)).toBeGreaterThanOrEqual(390);
  });

  it('a stop ends the wait at once', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect(await timedWait(watch, 5_000, controller.signal)).toBeLessThan(500);
  });
});
