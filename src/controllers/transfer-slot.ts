import type { LimitFunction } from 'p-limit';

/**
 * One place under the shared `concurrency_limit` cap, held while a file's bytes move
 * and given back before its commit (ledger, rename, folder sync), which waits on
 * disk syncs rather than on the network: many small files' commits then overlap
 * without starving the transfers. `acquire` again to transfer once more (a retry).
 */
export class TransferSlot {
  readonly #limit: LimitFunction;
  #release: (() => void) | undefined;

  constructor(limit: LimitFunction) {
    this.#limit = limit;
  }

  get held(): boolean {
    return this.#release !== undefined;
  }

  /** Resolves once a place is free and taken; a no-op while this slot holds one. */
  acquire(): Promise<void> {
    if (this.#release) return Promise.resolve();
    return new Promise<void>((taken) => {
      void this.#limit(
        () =>
          new Promise<void>((given) => {
            this.#release = given;
            taken();
          }),
      );
    });
  }

  /** Gives the place back; safe to call when not held. */
  release(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }
}
