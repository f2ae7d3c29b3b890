import type { Logger } from '../log/index.js';

/** Runs every closer even when some fail (each storage bounds its own close); failures are logged, not thrown. */
export async function closeAll(log: Logger, closers: readonly (() => Promise<unknown>)[]): Promise<void> {
  const results = await Promise.allSettled(closers.map((close) => close()));
  for (const result of results) {
    if (result.status === 'rejected')
      log.warn({ err: result.reason as unknown }, 'a resource did not close cleanly');
  }
}
