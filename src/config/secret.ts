import { inspect } from 'node:util';

/**
 * A password or passphrase. It prints, logs and serialises as `[REDACTED]`; only
 * `reveal()` gives the value, and only the SFTP connection calls it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[REDACTED]';
  }

  toJSON(): string {
    return '[REDACTED]';
  }

  [inspect.custom](): string {
    return '[REDACTED]';
  }
}
