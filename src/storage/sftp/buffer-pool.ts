/**
 * Read buffers of one size, handed from one download to the next. Every chunk a
 * download reads otherwise lands in fresh memory, and at a few hundred MB/s the
 * garbage collector spends a sixth of the main thread's time reclaiming it.
 */
export class BufferPool {
  readonly bufferBytes: number;
  readonly #maxFree: number;
  readonly #free: Buffer[] = [];
  /** Only memory this pool handed out comes back into it: other memory may be shared. */
  readonly #ours = new WeakSet<ArrayBufferLike>();

  constructor(bufferBytes: number, maxFree: number) {
    this.bufferBytes = bufferBytes;
    this.#maxFree = maxFree;
  }

  /** A buffer of `bufferBytes`, reused when one is free. */
  take(): Buffer {
    const free = this.#free.pop();
    if (free) return free;
    // Never a slice of Node's shared slab: the whole ArrayBuffer belongs to this buffer.
    const buffer = Buffer.allocUnsafeSlow(this.bufferBytes);
    this.#ours.add(buffer.buffer);
    return buffer;
  }

  /**
   * Takes back the memory under `chunk` (any view into a buffer `take` handed out,
   * possibly moved to a worker thread and back). The caller guarantees nothing reads
   * or writes it any more. Other memory, and memory beyond the pool's size, is left
   * to the garbage collector.
   */
  give(chunk: Uint8Array): void {
    const memory = chunk.buffer;
    if (!this.#ours.has(memory) || this.#free.length >= this.#maxFree) return;
    this.#free.push(Buffer.from(memory, 0, this.bufferBytes));
  }

  /** Moved memory comes back as a new ArrayBuffer: adopt it when it is the size of ours. */
  adopt(memory: ArrayBuffer): void {
    if (memory.byteLength !== this.bufferBytes || this.#free.length >= this.#maxFree) return;
    this.#ours.add(memory);
    this.#free.push(Buffer.from(memory, 0, this.bufferBytes));
  }
}

/** One pool per buffer size (servers may allow different read sizes), each keeping at most `maxFree` buffers. */
export class BufferPools {
  readonly #pools = new Map<number, BufferPool>();
  readonly #maxFree: number;

  constructor(maxFree: number) {
    this.#maxFree = maxFree;
  }

  of(bufferBytes: number): BufferPool {
    let pool = this.#pools.get(bufferBytes);
    if (!pool) {
      pool = new BufferPool(bufferBytes, this.#maxFree);
      this.#pools.set(bufferBytes, pool);
    }
    return pool;
  }
}
