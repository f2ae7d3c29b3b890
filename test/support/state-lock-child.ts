/**
 * Child process for the state-lock tests. Prints `ready`, then obeys stdin line by line
 * so several children can race at the same moment, round after round:
 * `go` tries to take the lock and prints one JSON line with the outcome; `release`
 * releases it (if held) and prints `{"result":"released"}`. Closing stdin releases and exits.
 *
 * argv: <stateDir> <command>
 */
import { createInterface } from 'node:readline';
import { SyncError } from '../../src/errors/index.js';
import { acquireStateLock, type StateLock } from '../../src/ledger/index.js';

const [stateDir, command] = process.argv.slice(2);
if (!stateDir || !command) throw new Error('usage: state-lock-child <stateDir> <command>');

function print(value: object): void {
  process.stdout.write(`${JSON.stringify({ pid: process.pid, ...value })}\n`);
}

let lock: StateLock | undefined;
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'go') {
    try {
      lock = await acquireStateLock({ stateDir, command });
      print({ result: 'acquired', tookOver: lock.tookOver ?? null });
    } catch (err) {
      const code = err instanceof SyncError ? err.code : 'not-a-sync-error';
      print({ result: 'refused', code, message: err instanceof Error ? err.message : String(err) });
    }
  } else if (line === 'release') {
    await lock?.release();
    lock = undefined;
    print({ result: 'released' });
  }
}
await lock?.release();
process.exit(0);
