import type { ErrorCode } from './sync-error.js';

/**
 * Codes that say a whole end of a transfer (a copier destination, a mirror's replica
 * or SFTP source) is unusable, not one file: denied, full or unreachable. Such a place gets
 * nothing more in the pass; its files wait for the next. A missing folder is not
 * among them: it is created again, so E_NOT_FOUND is about one file.
 */
const TARGET_DOWN_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'E_PERMISSION',
  'E_DISK_FULL',
  'E_CONNECTION',
  'E_TIMEOUT',
  'E_AUTH',
  'E_HOSTKEY',
]);

export function isTargetDown(code: ErrorCode): boolean {
  return TARGET_DOWN_CODES.has(code);
}
