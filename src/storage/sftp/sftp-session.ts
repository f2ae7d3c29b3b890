import type { Client, SFTPWrapper } from 'ssh2';
import { type ErrorContext, SyncError, withDeadline } from '../../errors/index.js';
import { mapSftpError } from './map-sftp-error.js';
import type { SshConnection } from './connect-ssh.js';

/** ssh2 internals read once per session: the server's extensions and its `limits@openssh.com` answer. */
interface Ssh2SftpInternals {
  _extensions?: Record<string, string>;
  _maxReadLen?: number;
  _maxWriteLen?: number;
}

/** What ssh2 uses without `limits@openssh.com` on a non-OpenSSH server (34000 minus overhead). */
const CONSERVATIVE_IO_BYTES = 31_952;

export type RequestCallback<T> = (err: Error | null | undefined, value?: T) => void;

export interface SessionExtensions {
  posixRename: boolean;
  statvfs: boolean;
  fsync: boolean;
  hardlink: boolean;
}

let nextSessionId = 1;

/**
 * One SSH connection with its SFTP channel. Every request goes through `request`,
 * which puts a deadline on it; a request that times out may have wedged the
 * channel, so the session destroys itself and the pool replaces it. Whatever ends
 * the connection (error, close, timeout, keepalive) marks the session broken and
 * fails its pending requests at once, so nothing waits for a deadline it need not.
 */
export class SftpSession {
  readonly id = nextSessionId++;
  readonly client: Client;
  readonly sftp: SFTPWrapper;
  readonly hostLabel: string;
  readonly operationTimeoutMs: number;
  readonly extensions: SessionExtensions;
  /** Largest read the server answers in full (limits@openssh.com), as ssh2 learnt it. */
  readonly maxReadBytes: number;
  readonly maxWriteBytes: number;
  #broken: SyncError | undefined;
  readonly #onBreak = new Set<(reason: SyncError) => void>();
  /**
   * Holds back what is sent until the current event-loop turn ends. Requests started by
   * many transfers in one turn (each woken by a local file operation, say) then leave in
   * one TCP write instead of one system call and one segment each.
   */
  #corkUntilTurnEnds: () => void = () => undefined;

  constructor(connection: SshConnection, hostLabel: string, operationTimeoutMs: number) {
    this.client = connection.client;
    this.sftp = connection.sftp;
    this.hostLabel = hostLabel;
    this.operationTimeoutMs = operationTimeoutMs;
    const internals = connection.sftp as unknown as Ssh2SftpInternals;
    const offered = internals._extensions ?? {};
    this.extensions = {
      posixRename: offered['posix-rename@openssh.com'] === '1',
      statvfs: offered['statvfs@openssh.com'] === '2',
      fsync: offered['fsync@openssh.com'] === '1',
      hardlink: offered['hardlink@openssh.com'] === '1',
    };
    this.maxReadBytes = positiveOr(internals._maxReadLen, CONSERVATIVE_IO_BYTES);
    this.maxWriteBytes = positiveOr(internals._maxWriteLen, CONSERVATIVE_IO_BYTES);

    const lost = (what: string) => (err?: Error) => this.markBroken(connectionLost(hostLabel, what, err));
    this.coalesceWrites();
    this.client.on('error', lost('failed'));
    this.client.on('close', lost('closed'));
    this.client.on('end', lost('ended'));
    this.sftp.on('error', lost('failed (SFTP channel)'));
    this.sftp.on('close', lost('closed (SFTP channel)'));
    this.sftp.on('end', lost('ended (SFTP channel)'));
  }

  get broken(): boolean {
    return this.#broken !== undefined;
  }

  /** Why the session broke, for requests that find it broken. */
  get brokenReason(): SyncError | undefined {
    return this.#broken;
  }

  /** Calls `listener` once when the session breaks (at once when it already has); returns an unsubscribe. */
  onBreak(listener: (reason: SyncError) => void): () => void {
    if (this.#broken) {
      listener(this.#broken);
      return () => undefined;
    }
    this.#onBreak.add(listener);
    return () => this.#onBreak.delete(listener);
  }

  /**
   * One SFTP request under the operation deadline. `issue` starts it with ssh2 and
   * hands ssh2's callback result to `done`; errors come back mapped with op, path and host.
   */
  request<T>(context: ErrorContext & { op: string }, issue: (done: RequestCallback<T>) => void): Promise<T> {
    const fullContext = { ...context, host: this.hostLabel };
    if (this.#broken) return Promise.reject(brokenRequestError(this.#broken, fullContext));
    let unsubscribe: () => void = () => undefined;
    this.#corkUntilTurnEnds();
    const pending = new Promise<T>((resolve, reject) => {
      unsubscribe = this.onBreak((reason) => reject(brokenRequestError(reason, fullContext)));
      try {
        issue((err, value) => {
          unsubscribe();
          if (err) reject(mapSftpError(err, fullContext));
          else resolve(value as T);
        });
      } catch (err) {
        unsubscribe();
        reject(mapSftpError(err, fullContext));
      }
    });
    return withDeadline(pending, this.operationTimeoutMs, fullContext, () => {
      unsubscribe();
      this.destroy(`${context.op} got no answer within ${this.operationTimeoutMs} ms`);
    });
  }

  /** Marks the session broken and drops the connection at once. */
  destroy(reason: string): void {
    this.markBroken(
      new SyncError('E_CONNECTION', `connection to ${this.hostLabel} dropped: ${reason}`, {
        op: 'session',
        host: this.hostLabel,
        hint: 'the server or the network stopped answering; it is retried',
      }),
    );
    this.client.destroy();
  }

  /** Ends the connection politely, destroying it when the server does not answer within `timeoutMs`. */
  async end(timeoutMs: number): Promise<void> {
    if (this.isSocketGone()) {
      this.destroy('closed');
      return;
    }
    const closed = new Promise<void>((resolve) => this.client.once('close', () => resolve()));
    this.markBroken(
      new SyncError('E_CONNECTION', `connection to ${this.hostLabel} was closed by this program`, {
        op: 'session',
        host: this.hostLabel,
        retryable: false,
      }),
    );
    try {
      this.client.end();
      await withDeadline(closed, timeoutMs, { op: 'close', host: this.hostLabel });
    } catch {
      // A server that does not answer the goodbye is dropped.
    } finally {
      this.client.destroy();
    }
  }

  /**
   * Everything ssh2 sends while it handles the incoming bytes of one event-loop turn
   * (window adjustments, the next read requests) leaves in one TCP write: with Nagle off,
   * each small write would otherwise be its own segment and system call, and on
   * loopback that, not the cipher, was a tenth of the client's time.
   */
  private coalesceWrites(): void {
    const socket = this.socket() as
      | ({ cork(): void; uncork(): void } & { prependListener(event: 'data', listener: () => void): void })
      | undefined;
    if (!socket || typeof socket.prependListener !== 'function') return;
    let corked = false;
    this.#corkUntilTurnEnds = () => {
      if (corked) return;
      corked = true;
      socket.cork();
      // After the poll phase, not the current tick: several reads' worth of replies share one write.
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    };
    socket.prependListener('data', this.#corkUntilTurnEnds);
  }

  /**
   * Runs `fn` with the socket corked until the event-loop turn ends, so the requests it
   * sends leave in one write, together with those other transfers send in the same turn.
   */
  corkWhile(fn: () => void): void {
    this.#corkUntilTurnEnds();
    fn();
  }

  private socket(): { cork(): void; uncork(): void } | undefined {
    const socket = (this.client as unknown as { _sock?: { cork?: unknown; uncork?: unknown } })._sock;
    return socket && typeof socket.cork === 'function' && typeof socket.uncork === 'function'
      ? (socket as { cork(): void; uncork(): void })
      : undefined;
  }

  private isSocketGone(): boolean {
    const socket = (this.client as unknown as { _sock?: { destroyed?: boolean } })._sock;
    return !socket || socket.destroyed === true;
  }

  private markBroken(reason: SyncError): void {
    if (this.#broken) return;
    this.#broken = reason;
    const listeners = [...this.#onBreak];
    this.#onBreak.clear();
    for (const listener of listeners) listener(reason);
  }
}

/**
 * What ssh2 says when a packet fails its integrity check: OpenSSL's bare
 * `error:00000000:lib(0)::reason(0)` from the native AES-GCM decipher, or the words of
 * its other ciphers and MACs.
 */
const CORRUPTED_IN_TRANSIT =
  /^error:[0-9a-f]{8}:|unable to authenticate data|bad mac|invalid mac|bad packet length/i;

/** Why a session ended, in words an operator can act on; a corrupted packet is named as such. */
function connectionLost(hostLabel: string, what: string, err: Error | undefined): SyncError {
  const corrupted = err !== undefined && CORRUPTED_IN_TRANSIT.test(err.message);
  const detail =
    err === undefined ? '' : corrupted ? `: data arrived corrupted (${err.message})` : `: ${err.message}`;
  return new SyncError('E_CONNECTION', `connection to ${hostLabel} ${what}${detail}`, {
    op: 'session',
    host: hostLabel,
    hint: corrupted
      ? 'something on the network path altered the data (a faulty link or middlebox); nothing corrupted is kept, and it is retried'
      : 'the server or the network dropped the connection; it is retried',
    ...(err ? { cause: err } : {}),
  });
}

/**
 * A broken connection as the failure of one request: the message says what was being
 * done and where (`download of /out/a.csv failed: connection to … ended`), not only
 * that the connection ended; the request's op and path replace the session's.
 */
export function brokenRequestError(reason: SyncError, context: ErrorContext & { op: string }): SyncError {
  const where = typeof context.path === 'string' ? ` of ${context.path}` : '';
  return new SyncError(reason.code, `${context.op}${where} failed: ${reason.message}`, {
    ...reason.context,
    ...context,
    ...(reason.cause !== undefined ? { cause: reason.cause } : {}),
  });
}

function positiveOr(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;
}
