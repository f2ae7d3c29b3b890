export { ERROR_CODES, type ErrorCode, type ErrorContext, isSyncError, SyncError } from './sync-error.js';
export { isAbortError, toSyncError } from './to-sync-error.js';
export { isRetryable } from './is-retryable.js';
export { formatErrorLine } from './format-error.js';
