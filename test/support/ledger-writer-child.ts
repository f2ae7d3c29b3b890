/**
 * Child process for the ledger durability test: records fetches with many writes in
 * flight and prints `ok <n>` for each write whose promise resolved. The parent kills it
 * with SIGKILL mid-stream, reads every line written before the kill, and checks that
 * every reported write is in the ledger.
 *
 * argv: <stateDir> <fileName> <count> <inFlight> <commitIntervalMs> <maxBatchWrites>
 */
import { writeSync } from 'node:fs';
import { openSqliteLedger } from '../../src/ledger/index.js';

const [stateDir, fileName, countText, inFlightText, commitIntervalText, maxBatchText] = process.argv.slice(2);
if (!stateDir || !fileName)
  throw new Error(
    'usage: ledger-writer-child <stateDir> <fileName> <count> <inFlight> <commitIntervalMs> <maxBatchWrites>',
  );
const count = Number(countText);
const inFlight = Number(inFlightText);
const ledger = openSqliteLedger({
  stateDir,
  fileName,
  commitIntervalMs: Number(commitIntervalText),
  maxBatchWrites: Number(maxBatchText),
});

/**
 * Synchronous: once this returns the line is in the pipe, and the parent reads it even
 * after the kill. The pipe is non-blocking, so a full pipe means wait and try again.
 */
function report(line: string): void {
  for (;;) {
    try {
      writeSync(1, line);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

let next = 0;
async function worker(): Promise<void> {
  while (next < count) {
    const n = next++;
    await ledger.recordFetch({
      source: 'crash-test',
      commitState: 'committed',
      remotePath: `/outbound/file-${n}.csv`,
      sizeBytes: n,
      mtimeMs: 1_700_000_000_000 + n,
      sha256: 'f'.repeat(64),
      localPath: `/data/incoming/file-${n}.csv`,
      fetchedAtMs: Date.now(),
      afterFetch: 'delete',
      afterFetchState: 'pending',
    });
    report(`ok ${n}\n`);
  }
}

process.stdout.write('ready\n');
await Promise.all(Array.from({ length: inFlight }, () => worker()));
await ledger.close();
process.stdout.write('done\n');
