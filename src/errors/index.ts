export { ERROR_CODES, type ErrorCode, type ErrorContext, isSyncError, SyncError } from './sync-error.js';
export { isAbortError, toSyncError } from './to-sync-error.js';
export { isRetryable } from './is-retryable.js';
export { isTargetDown } from './is-target-down.js';
export { formatErrorLine } from './format-error.js';
export {
  DEFAULT_RETRY_POLICY,
  type RetryOptions,
  type RetryPolicy,
  retryWithBackoff,
  sleep,
} from './retry-with-backoff.js';
export { withDeadline } from './with-deadline.js';
