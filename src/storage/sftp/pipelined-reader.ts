import { SyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { BufferPool } from './buffer-pool.js';
import { type IdleWatchdog, startIdleWatchdog } from './idle-watchdog.js';
import { mapSftpError } from './map-sftp-error.js';
import { brokenRequestError, type SftpSession } from './sftp-session.js';

export interface PipelinedReaderOptions {
  session: SftpSession;
  handle: Buffer;
  remotePath: string;
  /** `download`, `openRead`: names the operation in errors. */
  op: string;
  startOffset: number;
  /** Size when the file was opened (fstat); undefined when the server did not say. */
  sizeBytes: number | undefined;
  chunkBytes: number;
  /** Reads in flight plus chunks read but not yet taken. */
  maxInFlight: number;
  /** Where read buffers come from and go back to (`recycle`); of `chunkBytes` each. Else each read allocates. */
  buffers?: BufferPool;
  /** No reply for this long while reads are outstanding: E_TIMEOUT, and the session is destroyed. */
  idleTimeoutMs: number;
  /**
   * Read one byte past the expected end to catch a file that grew (default true). A
   * caller that stats the file once it was read, and compares, may leave it out.
   */
  probeEnd?: boolean;
  log: Logger;
}

type Range = [start: number, end: number];

/**
 * Reads a remote file with many READ requests in flight (like ssh2's fastGet) and
 * hands the bytes out strictly in order. Unlike fastGet it never produces a short
 * file silently:
 * - a short read (fewer bytes than asked, before the end: ssh2 #1166) keeps the
 *   bytes it got, re-reads the missing range, and switches to one read at a time
 *   for the rest of the file;
 * - end of file before the size seen at open, or data past it (one probe read at
 *   the end), is E_CHANGED: the file changed while it was read;
 * - without a size from the server it reads one chunk at a time until end of file.
 */
export class PipelinedReader {
  readonly #options: PipelinedReaderOptions;
  readonly #context: { op: string; path: string; host: string };
  #endOffset: number;
  #issueOffset: number;
  #consumeOffset: number;
  #inFlight = 0;
  readonly #holes: Range[] = [];
  readonly #ready = new Map<number, Buffer>();
  #sequential: boolean;
  /** Every byte was handed out and checked: nothing is left to stop. */
  #finished = false;
  #probe: 'none' | 'sent' | 'done';
  #failure: SyncError | undefined;
  #waiter: { resolve: (chunk: Buffer | null) => void; reject: (err: SyncError) => void } | undefined;
  readonly #watchdog: IdleWatchdog;
  readonly #unsubscribe: () => void;

  constructor(options: PipelinedReaderOptions) {
    this.#options = options;
    this.#context = { op: options.op, path: options.remotePath, host: options.session.hostLabel };
    this.#endOffset = options.sizeBytes ?? Number.POSITIVE_INFINITY;
    this.#issueOffset = options.startOffset;
    this.#consumeOffset = options.startOffset;
    this.#sequential = options.sizeBytes === undefined;
    // Without a known size there is nothing to probe past.
    this.#probe = options.sizeBytes === undefined || options.probeEnd === false ? 'done' : 'none';
    this.#watchdog = startIdleWatchdog(options.idleTimeoutMs, () => {
      this.fail(
        new SyncError(
          'E_TIMEOUT',
          `${options.op} stalled: no data for ${options.idleTimeoutMs} ms (${options.remotePath} on ${options.session.hostLabel})`,
          {
            ...this.#context,
            hint: 'the server or the network stopped answering; it is retried',
            timeoutMs: options.idleTimeoutMs,
          },
        ),
      );
      options.session.destroy(`${options.op} got no data within ${options.idleTimeoutMs} ms`);
    });
    this.#unsubscribe = options.session.onBreak((reason) =>
      this.fail(brokenRequestError(reason, this.#context)),
    );
    this.pump();
  }

  /** The next bytes in file order, or null once the whole file was read and checked. */
  next(): Promise<Buffer | null> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new SyncError('E_INTERNAL', 'PipelinedReader.next called twice'));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.deliver();
      this.pump();
    });
  }

  /** Stops reading; replies still on the way are dropped. `next` rejects with `reason` from now on. */
  fail(reason: SyncError): void {
    if (this.#failure) return;
    this.#failure = reason;
    this.#watchdog.stop();
    this.#unsubscribe();
    // Read but never handed out: nobody else holds these.
    for (const chunk of this.#ready.values()) this.#options.buffers?.give(chunk);
    this.#ready.clear();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(reason);
  }

  /**
   * Gives back a chunk `next` returned once nothing refers to it any more (written
   * and hashed), so its memory serves the next read instead of waiting for the GC.
   * `moved`: the chunk's memory went to another thread and came back.
   */
  recycle(chunk: Buffer, moved = false): void {
    const pool = this.#options.buffers;
    if (!pool) return;
    if (moved) pool.adopt(chunk.buffer as ArrayBuffer);
    else pool.give(chunk);
  }

  /** Ends the reader after success or when the caller stops early. */
  close(): void {
    if (this.#failure || this.#finished) return;
    this.fail(new SyncError('E_ABORTED', `${this.#options.op} was closed`, this.#context));
  }

  private pump(): void {
    this.issueReads();
    // Nothing in flight, nothing to hand out, not finished: a bug would otherwise hang here forever.
    const finished = this.#consumeOffset >= this.#endOffset && this.#probe === 'done';
    if (
      this.#waiter &&
      !this.#failure &&
      this.#inFlight === 0 &&
      !finished &&
      !this.#ready.has(this.#consumeOffset)
    ) {
      this.fail(
        new SyncError(
          'E_INTERNAL',
          `${this.#options.op} stalled at offset ${this.#consumeOffset} of ${this.#options.remotePath}`,
          {
            ...this.#context,
            hint: 'this is a bug: the debug log has the full trace',
          },
        ),
      );
    }
  }

  private issueReads(): void {
    const { chunkBytes, maxInFlight } = this.#options;
    // Requests issued together leave in one TCP write rather than one each.
    this.#options.session.corkWhile(() => this.issueLoop(chunkBytes, maxInFlight));
  }

  private issueLoop(chunkBytes: number, maxInFlight: number): void {
    while (!this.#failure) {
      if (this.#inFlight >= (this.#sequential ? 1 : maxInFlight)) return;
      const hole = this.#holes[0];
      if (hole) {
        const length = Math.min(chunkBytes, hole[1] - hole[0]);
        this.issue(hole[0], length, false);
        hole[0] += length;
        if (hole[0] >= hole[1]) this.#holes.shift();
        continue;
      }
      // Chunks nobody took yet count against the window: a slow consumer slows the reads.
      if (this.#inFlight + this.#ready.size >= maxInFlight) return;
      if (this.#issueOffset < this.#endOffset) {
        const length = Math.min(chunkBytes, this.#endOffset - this.#issueOffset);
        this.issue(this.#issueOffset, length, false);
        this.#issueOffset += length;
        continue;
      }
      if (this.#probe === 'none') {
        this.#probe = 'sent';
        this.issue(Math.max(this.#endOffset, this.#options.startOffset), 1, true);
      }
      return;
    }
  }

  private issue(offset: number, length: number, isProbe: boolean): void {
    const { session, handle, buffers } = this.#options;
    const buffer = buffers && length <= buffers.bufferBytes ? buffers.take() : Buffer.allocUnsafe(length);
    this.#inFlight += 1;
    this.#watchdog.started();
    try {
      // The buffer may be longer than the read (a pooled one): ssh2 fills `length` bytes at most.
      session.sftp.read(handle, buffer, 0, length, offset, (err, bytesRead) => {
        this.#inFlight -= 1;
        this.#watchdog.completed();
        if (this.#failure) {
          // ssh2 is done with the buffer once it calls back.
          buffers?.give(buffer);
          return;
        }
        if (err) {
          buffers?.give(buffer);
          this.fail(mapSftpError(err, this.#context));
          return;
        }
        if (isProbe || bytesRead === 0) buffers?.give(buffer);
        if (isProbe) this.onProbe(bytesRead);
        else this.onData(offset, length, buffer, bytesRead);
        this.deliver();
        this.pump();
      });
    } catch (err) {
      this.#inFlight -= 1;
      this.#watchdog.completed();
      this.fail(mapSftpError(err, this.#context));
    }
  }

  private onData(offset: number, length: number, buffer: Buffer, bytesRead: number): void {
    if (bytesRead === 0) {
      if (this.#options.sizeBytes !== undefined) {
        this.fail(
          this.changed(`it ended at ${offset} bytes, but was ${this.#options.sizeBytes} bytes when opened`),
        );
        return;
      }
      // Unknown size: end of file is where the first empty read lands.
      this.#endOffset = Math.min(this.#endOffset, offset);
      for (let index = this.#holes.length - 1; index >= 0; index -= 1) {
        const hole = this.#holes[index];
        if (hole && hole[0] >= offset) this.#holes.splice(index, 1);
      }
      return;
    }
    if (bytesRead < length) {
      this.#holes.push([offset + bytesRead, offset + length]);
      if (!this.#sequential && this.#options.sizeBytes !== undefined) {
        this.#sequential = true;
        this.#options.log.warn(
          { ...this.#context, offset, askedBytes: length, gotBytes: bytesRead },
          `server returned ${bytesRead} of ${length} bytes at offset ${offset} of ${this.#options.remotePath}; ` +
            'reading the rest one request at a time',
        );
      }
    }
    this.#ready.set(offset, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
  }

  private onProbe(bytesRead: number): void {
    if (bytesRead > 0) {
      this.fail(this.changed(`it grew past the ${this.#options.sizeBytes} bytes it had when opened`));
      return;
    }
    this.#probe = 'done';
  }

  private deliver(): void {
    const waiter = this.#waiter;
    if (!waiter || this.#failure) return;
    const chunk = this.#ready.get(this.#consumeOffset);
    if (chunk) {
      this.#ready.delete(this.#consumeOffset);
      this.#consumeOffset += chunk.length;
      this.#waiter = undefined;
      waiter.resolve(chunk);
      return;
    }
    if (this.#consumeOffset >= this.#endOffset && this.#probe === 'done' && this.#inFlight === 0) {
      this.#waiter = undefined;
      this.#finished = true;
      this.#watchdog.stop();
      this.#unsubscribe();
      waiter.resolve(null);
    }
  }

  private changed(what: string): SyncError {
    return new SyncError(
      'E_CHANGED',
      `${this.#options.op} failed: ${this.#options.remotePath} changed while it was read: ${what} (on ${this.#options.session.hostLabel})`,
      { ...this.#context, hint: 'the file is still being written; it is fetched again on a later pass' },
    );
  }
}
