/**
 * The one error type of the project. Every failure that reaches a log line or an
 * exit code is a SyncError: a stable `code` for machines, a one-line message for
 * people, and context that says where (op, host, path) and what to do (hint).
 */

export const ERROR_CODES = [
  'E_USAGE',
  'E_CONFIG',
  'E_AUTH',
  'E_HOSTKEY',
  'E_CONNECTION',
  'E_TIMEOUT',
  'E_NOT_FOUND',
  'E_PERMISSION',
  'E_DISK_FULL',
  'E_VERIFY',
  'E_CHANGED',
  'E_EXISTS',
  'E_UNSAFE_PATH',
  'E_LOCKED',
  'E_ABORTED',
  'E_UNSUPPORTED',
  'E_SAFETY',
  'E_IO',
  'E_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorContext {
  /** What was being done: 'connect', 'list', 'download', 'rename', … */
  op?: string;
  /** `user@host:port` of the SFTP server, absent for local operations. */
  host?: string;
  path?: string;
  /** Second path of a two-path operation (rename, copy). */
  dstPath?: string;
  source?: string;
  destination?: string;
  /** What the operator can do about it, in a few words. */
  hint?: string;
  [key: string]: unknown;
}

export interface SyncErrorOptions extends ErrorContext {
  cause?: unknown;
}

export class SyncError extends Error {
  override readonly name = 'SyncError';
  readonly code: ErrorCode;
  readonly context: Readonly<ErrorContext>;

  constructor(code: ErrorCode, message: string, options: SyncErrorOptions = {}) {
    const { cause, ...context } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.context = Object.freeze(context);
  }

  /** A copy with more context; existing keys win so the innermost, most precise context is kept. */
  withContext(extra: ErrorContext): SyncError {
    const merged = new SyncError(this.code, this.message, { ...extra, ...this.context, cause: this.cause });
    if (this.stack !== undefined) merged.stack = this.stack;
    return merged;
  }

  /** Structured form for JSON logs: no stack, cause reduced to its message and code. */
  toJSON(): Record<string, unknown> {
    const cause = this.cause as { message?: unknown; code?: unknown } | undefined;
    return {
      code: this.code,
      message: this.message,
      ...this.context,
      ...(cause ? { cause: { message: cause.message, code: cause.code } } : {}),
    };
  }
}

export function isSyncError(err: unknown): err is SyncError {
  return err instanceof SyncError;
}
