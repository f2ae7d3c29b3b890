import { SyncError } from './sync-error.js';

/** Codes worth another try: the network or the server may be better in a moment. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set(['E_CONNECTION', 'E_TIMEOUT']);

/**
 * The one place that decides what is worth retrying. Authentication, host keys,
 * missing or denied paths, full disks, bad config and bugs are not: retrying them
 * only delays the operator's fix.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof SyncError) {
    if (err.context.retryable === false) return false;
    return RETRYABLE_CODES.has(err.code) || err.context.retryable === true;
  }
  return false;
}
