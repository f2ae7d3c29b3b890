import {
  type ErrorCode,
  type ErrorContext,
  isAbortError,
  SyncError,
  toSyncError,
} from '../../errors/index.js';

/** SFTP v3 status codes (draft-ietf-secsh-filexfer-02 §7), as ssh2 puts them on `err.code`. */
export const SFTP_STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

export interface SftpErrorContext extends ErrorContext {
  op: string;
  /** `user@host:port`. */
  host: string;
}

interface StatusMapping {
  code: ErrorCode;
  what: string;
  hint: string;
}

const STATUS_MAPPINGS: Record<number, StatusMapping> = {
  [SFTP_STATUS.EOF]: {
    code: 'E_IO',
    what: 'unexpected end of file',
    hint: 'the file may have been truncated on the server; try again later',
  },
  [SFTP_STATUS.NO_SUCH_FILE]: {
    code: 'E_NOT_FOUND',
    what: 'no such file or folder',
    hint: 'check the path exists',
  },
  [SFTP_STATUS.PERMISSION_DENIED]: {
    code: 'E_PERMISSION',
    what: 'permission denied',
    hint: 'ask the server owner to grant this user access to the path',
  },
  [SFTP_STATUS.FAILURE]: {
    code: 'E_IO',
    what: 'the server reported a failure',
    hint: 'check the path on the server (exists, type, free space)',
  },
  [SFTP_STATUS.BAD_MESSAGE]: {
    code: 'E_IO',
    what: 'the server rejected the request as malformed',
    hint: 'the server may not support this operation or name',
  },
  [SFTP_STATUS.NO_CONNECTION]: {
    code: 'E_CONNECTION',
    what: 'no connection',
    hint: 'the connection to the server is down; it is retried',
  },
  [SFTP_STATUS.CONNECTION_LOST]: {
    code: 'E_CONNECTION',
    what: 'connection lost',
    hint: 'the connection to the server dropped; it is retried',
  },
  [SFTP_STATUS.OP_UNSUPPORTED]: {
    code: 'E_UNSUPPORTED',
    what: 'operation not supported by the server',
    hint: 'this server cannot do it; change the setting that needs it',
  },
};

/** What ssh2 says when a request's channel or connection went away under it. */
const CONNECTION_GONE_MESSAGES: ReadonlySet<string> = new Set(['No response from server', 'Not connected']);

/** Messages some servers put on a FAILURE status when the disk is full (OpenSSH sends only "Failure"). */
const DISK_FULL_MESSAGE = /no space|disk full|quota/i;

/**
 * Maps an error from an SFTP request (a status reply, a dropped channel, a
 * synchronous throw from ssh2) to a SyncError that names the operation, the path and
 * the server. The status code decides; FAILURE is refined by the server's message
 * where it says more. Callers refine FAILURE further where the operation tells them
 * more (rename onto an existing file, removing a folder that is not empty).
 */
export function mapSftpError(err: unknown, context: SftpErrorContext): SyncError {
  if (err instanceof SyncError) return err.withContext(context);
  if (isAbortError(err)) return toSyncError(err, context);
  const code = (err as { code?: unknown } | null)?.code;
  const message = errorMessage(err);
  if (typeof code === 'number') {
    const mapped = STATUS_MAPPINGS[code];
    if (mapped) {
      if (code === SFTP_STATUS.FAILURE && DISK_FULL_MESSAGE.test(message)) {
        return build(
          'E_DISK_FULL',
          `no space left (${message})`,
          'free some space on the server',
          context,
          err,
        );
      }
      const detail = isGenericStatusMessage(message) ? '' : `: ${message}`;
      return build(mapped.code, `${mapped.what}${detail}`, mapped.hint, context, err, { sftpStatus: code });
    }
  }
  if (typeof code === 'string') return toSyncError(err, context);
  if (CONNECTION_GONE_MESSAGES.has(message) || /SFTP session termination/.test(message)) {
    return build(
      'E_CONNECTION',
      'the connection closed before the server answered',
      'the server or the network dropped the connection; it is retried',
      context,
      err,
    );
  }
  if (message === 'Server does not support this extended request') {
    return build(
      'E_UNSUPPORTED',
      'the server does not offer the needed SFTP extension',
      'this server cannot do it; change the setting that needs it',
      context,
      err,
    );
  }
  return toSyncError(err, context);
}

function build(
  code: ErrorCode,
  what: string,
  hint: string,
  context: SftpErrorContext,
  cause: unknown,
  extra: ErrorContext = {},
): SyncError {
  return new SyncError(code, `${context.op} failed: ${what}${describeWhere(context)}`, {
    hint,
    ...context,
    ...extra,
    cause,
  });
}

export function describeWhere(context: ErrorContext): string {
  const parts: string[] = [];
  if (typeof context.path === 'string' && context.path) parts.push(context.path);
  if (typeof context.dstPath === 'string' && context.dstPath) parts.push(`→ ${context.dstPath}`);
  if (typeof context.host === 'string' && context.host) parts.push(`on ${context.host}`);
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}

/** OpenSSH's status messages repeat the code's own name and add nothing. */
function isGenericStatusMessage(message: string): boolean {
  return (
    message === '' ||
    /^(No such file|Permission denied|Failure|Bad message|No connection|Connection lost|Operation unsupported|End of file)/i.test(
      message,
    )
  );
}
