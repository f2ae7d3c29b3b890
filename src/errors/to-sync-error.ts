import { type ErrorCode, type ErrorContext, SyncError } from './sync-error.js';

interface NodeLikeError {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  level?: unknown;
}

/** Node's errno names mapped to our codes, each with the fix an operator would try first. */
const ERRNO_CODES: Record<string, { code: ErrorCode; what: string; hint: string }> = {
  ENOENT: { code: 'E_NOT_FOUND', what: 'no such file or folder', hint: 'check the path exists' },
  ENOTDIR: { code: 'E_NOT_FOUND', what: 'a part of the path is not a folder', hint: 'check the path' },
  EACCES: {
    code: 'E_PERMISSION',
    what: 'permission denied',
    hint: 'check the owner and mode of the path and its folders',
  },
  EPERM: {
    code: 'E_PERMISSION',
    what: 'operation not permitted',
    hint: 'check the owner and mode of the path and its folders',
  },
  EROFS: {
    code: 'E_PERMISSION',
    what: 'read-only file system',
    hint: 'mount the file system read-write or choose another path',
  },
  ENOSPC: { code: 'E_DISK_FULL', what: 'no space left on device', hint: 'free some space or lower the load' },
  EDQUOT: { code: 'E_DISK_FULL', what: 'disk quota exceeded', hint: 'raise the quota or free some space' },
  EEXIST: { code: 'E_EXISTS', what: 'already exists', hint: 'remove it or choose another name' },
  ENOTEMPTY: { code: 'E_EXISTS', what: 'folder not empty', hint: 'empty the folder first' },
  EISDIR: { code: 'E_IO', what: 'is a folder', hint: 'check the path names a file' },
  EMFILE: {
    code: 'E_IO',
    what: 'too many open files',
    hint: 'raise the open-file limit (ulimit -n) or lower concurrency_limit',
  },
  ENAMETOOLONG: {
    code: 'E_UNSAFE_PATH',
    what: 'name too long for this file system',
    hint: 'shorten the name or layout',
  },
  EILSEQ: {
    code: 'E_UNSAFE_PATH',
    what: 'name not valid on this file system',
    hint: 'rename the file at its source',
  },
  ECONNREFUSED: {
    code: 'E_CONNECTION',
    what: 'connection refused',
    hint: 'check the host and port, and that the server runs',
  },
  ECONNRESET: {
    code: 'E_CONNECTION',
    what: 'connection reset',
    hint: 'the network or the server dropped the connection; it is retried',
  },
  ECONNABORTED: {
    code: 'E_CONNECTION',
    what: 'connection aborted',
    hint: 'the network or the server dropped the connection; it is retried',
  },
  EPIPE: {
    code: 'E_CONNECTION',
    what: 'connection closed while writing',
    hint: 'the server dropped the connection; it is retried',
  },
  ETIMEDOUT: { code: 'E_TIMEOUT', what: 'timed out', hint: 'check the network, or raise the timeout' },
  EHOSTUNREACH: {
    code: 'E_CONNECTION',
    what: 'host unreachable',
    hint: 'check the host name and the network route',
  },
  ENETUNREACH: { code: 'E_CONNECTION', what: 'network unreachable', hint: 'check the network route' },
  ENOTFOUND: { code: 'E_CONNECTION', what: 'host name not found', hint: 'check the host name and DNS' },
  EAI_AGAIN: { code: 'E_CONNECTION', what: 'host name lookup failed', hint: 'check DNS; it is retried' },
};

/**
 * Wraps any thrown value as a SyncError with context. A SyncError gains the context
 * it lacks; a Node errno error is mapped by its code; anything else is E_INTERNAL,
 * a bug, and keeps its cause so the debug log holds the stack.
 */
export function toSyncError(err: unknown, context: ErrorContext = {}): SyncError {
  if (err instanceof SyncError) return err.withContext(context);
  const nodeErr = (typeof err === 'object' && err !== null ? err : {}) as NodeLikeError;
  const errno = typeof nodeErr.code === 'string' ? nodeErr.code : undefined;
  const mapped = errno ? ERRNO_CODES[errno] : undefined;
  const where = describeWhere(context);
  if (mapped) {
    return new SyncError(mapped.code, `${context.op ?? 'operation'} failed: ${mapped.what}${where}`, {
      hint: mapped.hint,
      ...context,
      errno,
      cause: err,
    });
  }
  if (isAbortError(err)) {
    return new SyncError('E_ABORTED', `${context.op ?? 'operation'} aborted${where}`, {
      ...context,
      cause: err,
    });
  }
  const message = typeof nodeErr.message === 'string' ? nodeErr.message : String(err);
  return new SyncError('E_INTERNAL', `${context.op ?? 'operation'} failed: ${message}${where}`, {
    hint: 'this is a bug: the debug log has the full trace',
    ...context,
    ...(errno ? { errno } : {}),
    cause: err,
  });
}

export function isAbortError(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    ((err as { name?: unknown }).name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR')
  );
}

function describeWhere(context: ErrorContext): string {
  const parts: string[] = [];
  if (context.path) parts.push(context.path);
  if (context.host) parts.push(`on ${context.host}`);
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
