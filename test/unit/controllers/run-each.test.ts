import { describe, expect, it } from 'vitest';
import { runEach } from '../../../src/controllers/run-each.js';
import { sleep } from '../../../src/errors/index.js';

describe('runEach', () => {
  it('works every item once, in order, never more than `workers` at a time', async () => {
    const items = Array.from({ length: 50 }, (_, index) => index);
    const started: number[] = [];
    let running = 0;
    let mostRunning = 0;
    await runEach(items, 4, async (item) => {
      started.push(item);
      running += 1;
      mostRunning = Math.max(mostRunning, running);
      await sleep(item % 3);
      running -= 1;
    });
    expect(started).toEqual(items);
    expect(mostRunning).toBe(4);
  });

  it('handles no items, and more workers than items', async () => {
    const seen: string[] = [];
    await runEach([], 8, () => Promise.resolve());
    await runEach(['a', 'b'], 8, (item) => {
      seen.push(item);
      return Promise.resolve();
    });
    expect(seen).toEqual(['a', 'b']);
  });

  it('after a work throws, starts nothing more and rejects only once the started ones ended', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const run = runEach([1, 2, 3, 4, 5, 6], 2, async (item) => {
      started.push(item);
      if (item === 2) throw new Error('two');
      await sleep(20);
      ended.push(item);
    });
    await expect(run).rejects.toThrow('two');
    // 1 was running when 2 failed: it ended before the rejection; nothing after 2 started.
    expect(started).toEqual([1, 2]);
    expect(ended).toEqual([1]);
  });
});
