import { isRetryable } from './is-retryable.js';
import { SyncError } from './sync-error.js';

export interface RetryPolicy {
  /** Retries after the first attempt (0 = try once). */
  retries: number;
  /** Delay before the first retry; doubles each time up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface RetryOptions extends RetryPolicy {
  signal?: AbortSignal;
  /** Told of each failed attempt that will be retried, e.g. to log it at debug level. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Which errors to retry; `isRetryable` by default. */
  shouldRetry?: (err: unknown) => boolean;
  /** Random source in [0, 1) for the jitter; injectable for tests. */
  random?: () => number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { retries: 3, baseDelayMs: 500, maxDelayMs: 30_000 };

/**
 * Runs `attempt` until it succeeds, fails with an error not worth retrying, or runs
 * out of retries. Delays grow exponentially with full jitter, so many clients hit
 * by the same outage do not come back in step.
 */
export async function retryWithBackoff<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const shouldRetry = options.shouldRetry ?? isRetryable;
  const random = options.random ?? Math.random;
  for (let attemptNumber = 1; ; attemptNumber += 1) {
    try {
      return await attempt(attemptNumber);
    } catch (err) {
      if (attemptNumber > options.retries || !shouldRetry(err) || options.signal?.aborted) throw err;
      const ceilingMs = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attemptNumber - 1));
      const delayMs = Math.round(ceilingMs / 2 + (random() * ceilingMs) / 2);
      options.onRetry?.(err, attemptNumber, delayMs);
      await sleep(delayMs, options.signal);
    }
  }
}

/** Resolves after `ms`, or rejects with E_ABORTED as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(timer);
      reject(abortedError());
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortedError(): SyncError {
  return new SyncError('E_ABORTED', 'stopped while waiting to retry', { op: 'retry' });
}
