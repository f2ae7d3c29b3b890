/**
 * Ledger benchmark: `npx tsx scripts/bench-ledger.ts [--records N] [--keep]`.
 *
 * Fills a fresh ledger to N fetch records (default 1,000,000) through `recordFetch` in
 * big group-committed batches, reopens it, then times (after one untimed warm-up each,
 * median of 5 runs):
 *  - `filterNotFetched` over 10,000 keys, half of them stored, picked at random;
 *  - 10,000 `recordFetch` calls all in flight at once;
 *  - 10,000 `recordFetch` calls from 64 and 16 workers that each await their write (how
 *    the fetcher calls it), and from 64 workers with ~40 ms of other work between
 *    writes (about the SFTP small-file rate measured here, ~1,500 files/s).
 * Prints the figures, the database size and the process RSS. Uses a fresh folder under
 * the OS temp folder, removed at the end unless `--keep`.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type FetchKey, type FetchRecord, openSqliteLedger, type SqliteLedger } from '../src/ledger/index.js';

const { values } = parseArgs({
  options: { records: { type: 'string', default: '1000000' }, keep: { type: 'boolean', default: false } },
});
const recordCount = Number(values.records);
const FILE_NAME = 'fetch-files.sqlite';
const SOURCES = 8;
const RUNS = 5;

function keyOf(n: number): FetchKey {
  return {
    source: `partner-${n % SOURCES}`,
    remotePath: `/outbound/2024/${String(n % 365).padStart(3, '0')}/invoice-${n}.csv`,
    sizeBytes: 1_000 + (n % 100_000),
    mtimeMs: 1_700_000_000_000 + n * 1_000,
  };
}

function recordOf(n: number): FetchRecord {
  const key = keyOf(n);
  return {
    ...key,
    commitState: 'committed',
    sha256: (n.toString(16) + 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855').slice(
      0,
      64,
    ),
    localPath: `/srv/files-sync-link/data/incoming${key.remotePath}`,
    archivePath: `/srv/files-sync-link/data/archive/${key.source}${key.remotePath}`,
    fetchedAtMs: 1_700_000_000_000 + n,
    afterFetch: n % 3 === 0 ? 'delete' : 'keep',
    afterFetchState: 'done',
  };
}

/** Small deterministic PRNG (mulberry32): the same key sets on every run of the script. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function probeKeys(seed: number): FetchKey[] {
  const next = random(seed);
  return Array.from({ length: 10_000 }, (_, i) =>
    i % 2 === 0
      ? keyOf(Math.floor(next() * recordCount))
      : keyOf(recordCount + 1_000_000 + Math.floor(next() * 1e9)),
  );
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function fill(stateDir: string): Promise<number> {
  const ledger = openSqliteLedger({ stateDir, fileName: FILE_NAME, maxBatchWrites: 5_000 });
  const startedMs = performance.now();
  for (let start = 0; start < recordCount; start += 5_000) {
    const batch: Promise<void>[] = [];
    for (let n = start; n < Math.min(recordCount, start + 5_000); n += 1)
      batch.push(ledger.recordFetch(recordOf(n)));
    await Promise.all(batch);
    if ((start + 5_000) % 100_000 === 0) process.stderr.write(`  filled ${start + 5_000}\n`);
  }
  const elapsedMs = performance.now() - startedMs;
  await ledger.close();
  return elapsedMs;
}

async function timeFilter(ledger: SqliteLedger): Promise<{ medianMs: number; samples: number[] }> {
  await ledger.filterNotFetched(probeKeys(999)); // warm-up
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run += 1) {
    const keys = probeKeys(run + 1);
    const startedMs = performance.now();
    const notFetched = await ledger.filterNotFetched(keys);
    samples.push(performance.now() - startedMs);
    if (notFetched.length < 4_900 || notFetched.length > 5_000) {
      throw new Error(`filterNotFetched returned ${notFetched.length} keys; expected about 5,000`);
    }
  }
  return { medianMs: median(samples), samples };
}

let nextNew = 10_000_000_000;

interface WriteRun {
  ms: number;
  commits: number;
  /** Time inside COMMIT: the event loop is blocked meanwhile. */
  commitMs: number;
}

async function timeConcurrentWrites(ledger: SqliteLedger): Promise<WriteRun> {
  const before = ledger.stats();
  const startedMs = performance.now();
  await Promise.all(Array.from({ length: 10_000 }, () => ledger.recordFetch(recordOf(nextNew++))));
  return runOf(ledger, before, startedMs);
}

function runOf(
  ledger: SqliteLedger,
  before: { commits: number; commitMs: number },
  startedMs: number,
): WriteRun {
  const after = ledger.stats();
  return {
    ms: performance.now() - startedMs,
    commits: after.commits - before.commits,
    commitMs: after.commitMs - before.commitMs,
  };
}

/** `workers` loops that each await their write, with `workMs` (random, 0..2x) of other work between writes. */
async function timeWorkerWrites(ledger: SqliteLedger, workers: number, workMs = 0): Promise<WriteRun> {
  const before = ledger.stats();
  let remaining = 10_000;
  const startedMs = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (remaining > 0) {
        remaining -= 1;
        if (workMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 * workMs));
        await ledger.recordFetch(recordOf(nextNew++));
      }
    }),
  );
  return runOf(ledger, before, startedMs);
}

async function timeRuns(label: string, run: () => Promise<WriteRun>): Promise<void> {
  await run(); // warm-up
  const results: WriteRun[] = [];
  for (let i = 0; i < RUNS; i += 1) results.push(await run());
  const ms = median(results.map((r) => r.ms));
  const commits = median(results.map((r) => r.commits));
  const blocked = median(results.map((r) => (100 * r.commitMs) / r.ms));
  console.log(
    `${label}: median ${ms.toFixed(0)} ms (${Math.round(10_000 / (ms / 1000))} records/s, ${commits} commits, ` +
      `${blocked.toFixed(0)}% of the time in COMMIT; runs ${results.map((r) => r.ms.toFixed(0)).join(', ')} ms)`,
  );
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'files-sync-link-bench-ledger-'));
  const stateDir = join(root, 'state');
  const dbPath = join(stateDir, FILE_NAME);
  console.log(`ledger benchmark: ${recordCount} records in ${dbPath}`);
  try {
    const fillMs = await fill(stateDir);
    console.log(
      `fill: ${recordCount} records in ${(fillMs / 1000).toFixed(1)} s (${Math.round(recordCount / (fillMs / 1000))} records/s)`,
    );
    console.log(`file after fill: ${mib(sizeOf(dbPath))} (+ WAL ${mib(sizeOf(`${dbPath}-wal`))})`);

    const ledger = openSqliteLedger({ stateDir, fileName: FILE_NAME });
    try {
      const filter = await timeFilter(ledger);
      console.log(
        `filterNotFetched, 10,000 keys (half stored): median ${filter.medianMs.toFixed(1)} ms (runs ${filter.samples
          .map((ms) => ms.toFixed(1))
          .join(', ')} ms)`,
      );
      await timeRuns('recordFetch x 10,000, all in flight', () => timeConcurrentWrites(ledger));
      await timeRuns('recordFetch x 10,000, 64 workers awaiting each write', () =>
        timeWorkerWrites(ledger, 64),
      );
      await timeRuns('recordFetch x 10,000, 16 workers awaiting each write', () =>
        timeWorkerWrites(ledger, 16),
      );
      await timeRuns('recordFetch x 10,000, 64 workers with ~40 ms of other work per record', () =>
        timeWorkerWrites(ledger, 64, 40),
      );
    } finally {
      await ledger.close();
    }
    console.log(`file at the end: ${mib(sizeOf(dbPath))} (+ WAL ${mib(sizeOf(`${dbPath}-wal`))})`);
    const memory = process.memoryUsage();
    console.log(`RSS: ${mib(memory.rss)} (JS heap used ${mib(memory.heapUsed)})`);
  } finally {
    if (values.keep) console.log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
}

await main();
