import type { SftpConnectionConfig } from '../../config/config-types.js';
import { isRetryable, type RetryPolicy, retryWithBackoff, SyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { connectSsh } from './connect-ssh.js';
import { SftpSession } from './sftp-session.js';

export interface SftpSessionPoolOptions {
  connection: SftpConnectionConfig;
  hostLabel: string;
  log: Logger;
  /** Delays between connect attempts; the number of retries is `connection.retries`. */
  retryDelays: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>;
  /** Log the SSH protocol at trace level (see connectSsh). */
  traceProtocol?: boolean;
}

export interface UseOptions {
  /**
   * Read-only and idempotent (stat, realPath, opening a listing): when the session
   * breaks under it, it is tried once more on a fresh session. Writes and transfers
   * never are: the caller retries whole files, and writes go to temporary names.
   */
  idempotent?: boolean;
  signal?: AbortSignal;
}

interface Slot {
  session: SftpSession | undefined;
  ready: Promise<SftpSession>;
  /** Operations using (or waiting for) this slot's session. */
  load: number;
  generation: number;
}

/** Upper bound for closing: a server that does not answer the goodbye does not hold the program. */
const MAX_CLOSE_MS = 5_000;

/**
 * A few SSH sessions to one server, opened lazily and reused across files and
 * passes. An idle session is preferred; a new one is opened while fewer than
 * `connection.connections` exist; beyond that callers share the least-loaded one
 * (SFTP multiplexes requests). A broken session leaves the pool at once and the
 * next call opens a replacement. Connecting retries transient faults with capped
 * exponential backoff and jitter; authentication and host key failures are final.
 */
export class SftpSessionPool {
  readonly #options: SftpSessionPoolOptions;
  #slots: Slot[] = [];
  #generation = 0;
  #closeController = new AbortController();

  constructor(options: SftpSessionPoolOptions) {
    this.#options = options;
  }

  /** Runs `fn` with a session; see `UseOptions.idempotent` for the one retry. */
  async use<T>(fn: (session: SftpSession) => Promise<T>, options: UseOptions = {}): Promise<T> {
    const first = await this.acquire(options.signal);
    let firstError: unknown;
    try {
      return await fn(first.session);
    } catch (err) {
      const worthRetry =
        options.idempotent && first.session.broken && isRetryable(err) && !options.signal?.aborted;
      if (!worthRetry) throw err;
      firstError = err;
      this.#options.log.debug(
        { op: 'session', host: this.#options.hostLabel, err },
        'session broke under a read-only request; trying it once more on a fresh session',
      );
    } finally {
      first.release();
    }
    // When no fresh session can be had either, the request's own failure says more than the connect's.
    const second = await this.acquire(options.signal).catch(() => {
      throw firstError;
    });
    try {
      return await fn(second.session);
    } finally {
      second.release();
    }
  }

  /** Takes a session for an operation that holds it (a transfer, a listing); call `release` when done. */
  async acquire(signal?: AbortSignal): Promise<{ session: SftpSession; release: () => void }> {
    this.#slots = this.#slots.filter((slot) => !slot.session?.broken);
    const max = Math.max(1, this.#options.connection.connections);
    let slot = this.#slots.find((candidate) => candidate.session && candidate.load === 0);
    if (!slot && this.#slots.length < max) slot = this.openSlot();
    if (!slot)
      slot = this.#slots.reduce((best, candidate) => (candidate.load < best.load ? candidate : best));
    const taken = slot;
    taken.load += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      taken.load -= 1;
    };
    try {
      return { session: await abortable(taken.ready, signal, this.#options.hostLabel), release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Ends every session within a bounded time; the pool opens new ones if used again. */
  async close(): Promise<void> {
    this.#generation += 1;
    this.#closeController.abort();
    this.#closeController = new AbortController();
    const slots = this.#slots;
    this.#slots = [];
    const timeoutMs = Math.min(this.#options.connection.operationTimeoutMs, MAX_CLOSE_MS);
    await Promise.all(slots.map(async (slot) => slot.session?.end(timeoutMs)));
  }

  /** Sessions open or opening, for tests and diagnostics. */
  get size(): number {
    return this.#slots.filter((slot) => !slot.session?.broken).length;
  }

  private openSlot(): Slot {
    const { connection, hostLabel, log, retryDelays, traceProtocol } = this.#options;
    const generation = this.#generation;
    const closeSignal = this.#closeController.signal;
    const slot: Slot = {
      session: undefined,
      ready: Promise.resolve(undefined as never),
      load: 0,
      generation,
    };
    slot.ready = retryWithBackoff(
      () => connectSsh({ connection, hostLabel, log, traceProtocol: traceProtocol === true }),
      {
        retries: connection.retries,
        baseDelayMs: retryDelays.baseDelayMs,
        maxDelayMs: retryDelays.maxDelayMs,
        // Only closing cancels a shared connect: one caller giving up must not fail the others waiting on it.
        signal: closeSignal,
        onRetry: (err, attempt, delayMs) =>
          log.warn(
            { op: 'connect', host: hostLabel, err, attempt, delayMs },
            `connecting to ${hostLabel} failed (attempt ${attempt}); retrying in ${delayMs} ms`,
          ),
      },
    ).then(
      (connected) => {
        const session = new SftpSession(connected, hostLabel, connection.operationTimeoutMs);
        if (generation !== this.#generation) {
          void session.end(MAX_CLOSE_MS);
          throw new SyncError(
            'E_ABORTED',
            `connecting to ${hostLabel} was cancelled: the storage was closed`,
            {
              op: 'connect',
              host: hostLabel,
            },
          );
        }
        slot.session = session;
        session.onBreak(() => {
          this.#slots = this.#slots.filter((candidate) => candidate !== slot);
        });
        return session;
      },
      (err: unknown) => {
        this.#slots = this.#slots.filter((candidate) => candidate !== slot);
        throw err;
      },
    );
    // Waiters attach their own handlers; this one only keeps an unwaited failure from being "unhandled".
    slot.ready.catch(() => undefined);
    this.#slots.push(slot);
    return slot;
  }
}

/** `promise`, or E_ABORTED as soon as `signal` aborts (the work behind `promise` goes on for others). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, hostLabel: string): Promise<T> {
  if (!signal) return promise;
  const aborted = (): SyncError =>
    new SyncError('E_ABORTED', `stopped while waiting for a connection to ${hostLabel}`, {
      op: 'connect',
      host: hostLabel,
    });
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
