/**
 * runLoop with an injected clock: passes start on the cron schedule (in the configured
 * time zone), a slow pass that overruns the next due time is never started twice or
 * overlapped, and the next pass starts on the first due time after it ends.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type PassOutcome, runLoop } from '../../../src/apps/run-loop.js';
import type { LoopConfig } from '../../../src/config/index.js';

const log = pino({ level: 'silent' });

/** A clock that only moves when a pass "works" or the loop "waits". */
function fakeClock(startIso: string) {
  let nowMs = Date.parse(startIso);
  const waits: number[] = [];
  return {
    now: () => new Date(nowMs),
    advance: (ms: number) => {
      nowMs += ms;
    },
    iso: () => new Date(nowMs).toISOString(),
    waits,
    wait: async (delayMs: number) => {
      waits.push(delayMs);
      nowMs += delayMs;
    },
  };
}

function loop(overrides: Partial<LoopConfig>): LoopConfig {
  return { intervalMs: 60_000, shutdownGraceMs: 1_000, ...overrides };
}

const MINUTE = 60_000;

describe('runLoop', () => {
  it('starts passes on the cron schedule; an overrunning pass delays the next to the following due time', async () => {
    const clock = fakeClock('2026-05-14T10:00:30Z');
    const durationsMs = [1 * MINUTE, 7 * MINUTE, 30_000, 10_000];
    const starts: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const outcome = await runLoop({
      loop: loop({ schedule: '*/5 * * * *', timeZone: 'UTC' }),
      stopOnLoop: 4,
      stopSignal: new AbortController().signal,
      log,
      now: clock.now,
      waitForNextPass: clock.wait,
      runPass: async (passNumber) => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        starts.push(clock.iso());
        clock.advance(durationsMs[passNumber - 1] ?? 0);
        await Promise.resolve();
        running -= 1;
        return 'ok';
      },
    });
    expect(outcome).toBe('ok');
    // Pass 2 ran 10:10–10:17: the 10:15 start was skipped, not run late and not run twice.
    expect(starts).toEqual([
      '2026-05-14T10:05:00.000Z',
      '2026-05-14T10:10:00.000Z',
      '2026-05-14T10:20:00.000Z',
      '2026-05-14T10:25:00.000Z',
    ]);
    expect(maxRunning).toBe(1);
  });

  it('a pass still running when the next is due is not started again: the loop waits for it', async () => {
    const clock = fakeClock('2026-05-14T10:00:00.500Z');
    let finishFirst: (outcome: PassOutcome) => void = () => undefined;
    const starts: string[] = [];
    const done = runLoop({
      loop: loop({ schedule: '* * * * * *' }),
      stopOnLoop: 2,
      stopSignal: new AbortController().signal,
      log,
      now: clock.now,
      waitForNextPass: clock.wait,
      runPass: (passNumber) => {
        starts.push(clock.iso());
        if (passNumber === 1) return new Promise<PassOutcome>((resolve) => (finishFirst = resolve));
        return Promise.resolve('ok');
      },
    });
    // Many due times pass while the first pass runs (the waits resolve at once, so an
    // eager loop would start more passes now).
    for (let turn = 0; turn < 20; turn += 1) await new Promise((resolve) => setImmediate(resolve));
    clock.advance(5_250);
    expect(starts).toEqual(['2026-05-14T10:00:01.000Z']);
    finishFirst('ok');
    await expect(done).resolves.toBe('ok');
    expect(starts).toEqual(['2026-05-14T10:00:01.000Z', '2026-05-14T10:00:07.000Z']);
  });

  it('reads the schedule in the configured time zone', async () => {
    const clock = fakeClock('2026-05-14T05:00:00Z');
    const starts: string[] = [];
    await runLoop({
      loop: loop({ schedule: '0 9 * * *', timeZone: 'Europe/Paris' }),
      stopOnLoop: 2,
      stopSignal: new AbortController().signal,
      log,
      now: clock.now,
      waitForNextPass: clock.wait,
      runPass: async () => {
        starts.push(clock.iso());
        return 'ok';
      },
    });
    // 09:00 in Paris is 07:00 UTC in May (summer time).
    expect(starts).toEqual(['2026-05-14T07:00:00.000Z', '2026-05-15T07:00:00.000Z']);
  });

  it('on an interval, waits that long after each pass ends; a stop signal ends the wait and the loop', async () => {
    const clock = fakeClock('2026-05-14T10:00:00Z');
    const stop = new AbortController();
    const starts: string[] = [];
    const outcome = await runLoop({
      loop: loop({ intervalMs: 5 * MINUTE }),
      stopSignal: stop.signal,
      log,
      now: clock.now,
      waitForNextPass: clock.wait,
      runPass: async (passNumber) => {
        starts.push(clock.iso());
        clock.advance(MINUTE);
        if (passNumber === 3) stop.abort();
        return 'ok';
      },
    });
    expect(outcome).toBe('interrupted');
    expect(starts).toEqual([
      '2026-05-14T10:00:00.000Z',
      '2026-05-14T10:06:00.000Z',
      '2026-05-14T10:12:00.000Z',
    ]);
    expect(clock.waits).toEqual([5 * MINUTE, 5 * MINUTE]);
  });
});
