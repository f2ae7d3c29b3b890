/**
 * runCopyPass with a real incoming folder, a real ledger and in-memory destinations:
 * the per-destination bookkeeping that is awkward to provoke end to end.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { readdir, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CopierConfig, DestinationConfig, SftpDestinationConfig } from '../../../src/config/index.js';
import { type CopyPassInput, runCopyPass } from '../../../src/controllers/copy-pass.js';
import { releaseAsidePath } from '../../../src/controllers/release-incoming-file.js';
import { SyncError } from '../../../src/errors/index.js';
import { openSqliteLedger, type SqliteLedger } from '../../../src/ledger/index.js';
import { createLocalStorage } from '../../../src/storage/index.js';
import type { Storage } from '../../../src/storage/storage.js';
import { type CapturedLog, captureLogger } from '../../support/capture-logger.js';
import { MemoryStorage } from '../../support/memory-storage.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const MTIME_MS = Date.UTC(2026, 0, 5, 6, 7, 8);

let temp: TempDir;
let ledger: SqliteLedger;
let incoming: string;
let captured: CapturedLog;
const local = createLocalStorage();

beforeEach(async () => {
  temp = await makeTempDir('copy-pass-');
  incoming = join(temp.path, 'incoming');
  await local.mkdirp(incoming);
  ledger = openSqliteLedger({ stateDir: join(temp.path, 'state'), fileName: 'copy-files.sqlite' });
  captured = captureLogger();
});
afterEach(async () => {
  await ledger?.close();
  await temp?.remove();
});

function memoryDestination(
  name: string,
  overrides: Partial<SftpDestinationConfig> = {},
): SftpDestinationConfig {
  return {
    kind: 'sftp',
    name,
    enabled: true,
    path: `/${name}`,
    include: [],
    exclude: [],
    onConflict: 'fail',
    verify: 'size',
    minFreeSpaceBytes: 0,
    preserveMtime: true,
    sftp: {
      host: 'memory',
      port: 22,
      username: 'test',
      auth: { kind: 'agent', agentSocketPath: '/dev/null' },
      hostKey: { kind: 'insecure' },
      connections: 1,
      connectTimeoutMs: 1000,
      operationTimeoutMs: 1000,
      keepaliveIntervalMs: 0,
      retries: 0,
      readConcurrency: 1,
      chunkSizeBytes: 1024,
    },
    ...overrides,
  };
}

function copierConfig(
  destinations: DestinationConfig[],
  overrides: Partial<CopierConfig> = {},
): CopierConfig {
  return {
    kind: 'copier',
    configPath: join(temp.path, 'copier.yml'),
    concurrencyLimit: 4,
    intervalMs: 1000,
    shutdownGraceMs: 1000,
    stateDir: join(temp.path, 'state'),
    logDir: join(temp.path, 'log'),
    incoming,
    minAgeMs: 0,
    unmatched: 'keep',
    watch: false,
    destinations,
    ...overrides,
  };
}

interface Memory {
  reportedUnmatched: Set<string>;
  destinationsToClean: Set<string>;
}

/** What a copier process keeps across passes. */
function processMemory(destinations: { destination: DestinationConfig }[]): Memory {
  return {
    reportedUnmatched: new Set(),
    destinationsToClean: new Set(destinations.map(({ destination }) => destination.name)),
  };
}

function pass(
  handles: { destination: DestinationConfig; storage: Storage }[],
  memory: Memory,
  overrides: Partial<CopyPassInput> = {},
): ReturnType<typeof runCopyPass> {
  const never = new AbortController().signal;
  return runCopyPass({
    config: copierConfig(handles.map((handle) => handle.destination)),
    destinations: handles,
    local,
    ledger,
    log: captured.log,
    limit: pLimit(4),
    dryRun: false,
    stopSignal: never,
    abortSignal: never,
    ...memory,
    ...overrides,
  });
}

async function addIncoming(relPath: string, content: string, mtimeMs = MTIME_MS): Promise<string> {
  const path = join(incoming, relPath);
  await local.mkdirp(join(path, '..'));
  await writeFile(path, content);
  await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
  return path;
}

const errorsOf = (name: string): Record<string, unknown>[] =>
  captured.lines().filter((line) => line.level === 50 && line.destination === name);

/** Delays one method of a storage until `gate` resolves (a destination slow to connect). */
function gated(storage: MemoryStorage, method: 'mkdirp', gate: Promise<void>): Storage {
  return new Proxy(storage, {
    get(target, property, receiver) {
      if (property === method) {
        return async (path: string) => {
          await gate;
          return target.mkdirp(path);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('runCopyPass', () => {
  it('reports an unmatched file once per process, however many passes', async () => {
    await addIncoming('orphan.bin', 'nobody wants me\n');
    const handles = [
      { destination: memoryDestination('csv', { include: ['*.csv'] }), storage: new MemoryStorage() },
    ];
    const memory = processMemory(handles);
    for (let i = 0; i < 3; i += 1) await pass(handles, memory);
    const told = () =>
      captured.lines().filter((line) => String(line.msg).includes('no destination matches orphan.bin'));
    expect(told()).toHaveLength(1);
    // A new process tells it again.
    await pass(handles, processMemory(handles));
    expect(told()).toHaveLength(2);
  });

  it('a file only a disabled destination wants waits, unreported; one an enabled destination also wants leaves', async () => {
    await addIncoming('for-paused.bin', 'later\n');
    await addIncoming('for-both.csv', 'now\n');
    const active = new MemoryStorage();
    const handles = [
      { destination: memoryDestination('paused', { enabled: false }), storage: new MemoryStorage() },
      { destination: memoryDestination('active', { include: ['*.csv'] }), storage: active },
    ];
    const reports = await pass(handles, processMemory(handles));
    expect(await readdir(incoming)).toEqual(['for-paused.bin']);
    expect(active.content('/active/for-both.csv')).toBe('now\n');
    expect(reports.find((report) => report.name === '(incoming)')).toMatchObject({
      done: 1,
      waiting: 1,
      skipped: 0,
    });
    expect(captured.lines().filter((line) => String(line.msg).includes('no destination matches'))).toEqual(
      [],
    );
  });

  it('a failing destination is logged once per pass, blocks nobody, and later gets only what it lacks', async () => {
    for (let i = 0; i < 5; i += 1) await addIncoming(`f-${i}.csv`, `file ${i}\n`);
    const good = new MemoryStorage();
    const flaky = new MemoryStorage();
    let down = true;
    flaky.beforeOp = (op, path) => {
      if (down && op === 'upload')
        throw new SyncError('E_CONNECTION', 'connection reset', { op, path, host: 'memory://test' });
    };
    const handles = [
      { destination: memoryDestination('good'), storage: good },
      { destination: memoryDestination('flaky'), storage: flaky },
    ];
    const memory = processMemory(handles);

    const first = await pass(handles, memory);
    expect(errorsOf('flaky')).toHaveLength(1);
    expect(first.find((report) => report.name === 'flaky')).toMatchObject({ waiting: 5, failed: 0 });
    expect(first.find((report) => report.name === 'good')).toMatchObject({ done: 5 });
    expect((await readdir(incoming)).length).toBe(5);
    const goodUploads = good.calls.filter((call) => call.op === 'upload').length;
    expect(goodUploads).toBe(5);

    await pass(handles, memory);
    expect(errorsOf('flaky')).toHaveLength(2);

    down = false;
    const third = await pass(handles, memory);
    expect(third.find((report) => report.name === 'flaky')).toMatchObject({ done: 5 });
    expect(third.find((report) => report.name === 'good')).toMatchObject({ done: 0, alreadyDone: 5 });
    expect(good.calls.filter((call) => call.op === 'upload').length).toBe(goodUploads);
    expect(await readdir(incoming)).toEqual([]);
  });

  it('a destination slow to get ready does not hold up the copies to the others', async () => {
    // More files than the pass has workers (twice concurrency_limit 4): none may sit waiting on it.
    const fileCount = 20;
    for (let i = 0; i < fileCount; i += 1) await addIncoming(`f-${i}.csv`, `file ${i}\n`);
    const fast = new MemoryStorage();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handles = [
      { destination: memoryDestination('slow'), storage: gated(new MemoryStorage(), 'mkdirp', gate) },
      { destination: memoryDestination('fast'), storage: fast },
    ];
    const running = pass(handles, processMemory(handles));
    const startedMs = Date.now();
    while (
      fast.calls.filter((call) => call.op === 'rename').length < fileCount &&
      Date.now() - startedMs < 5_000
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const fastDoneBeforeSlowReady = fast.calls.filter((call) => call.op === 'rename').length;
    expect(await readdir(incoming)).toHaveLength(fileCount);
    release();
    const reports = await running;
    expect(fastDoneBeforeSlowReady).toBe(fileCount);
    expect(reports.find((report) => report.name === 'slow')).toMatchObject({ done: fileCount });
    expect(reports.find((report) => report.name === '(incoming)')).toMatchObject({ done: fileCount });
    expect(await readdir(incoming)).toEqual([]);
  });

  it('removes leftover temporaries at a destination on the first pass, and again only after a failed copy', async () => {
    const dst = new MemoryStorage();
    dst.addFile('/dst/sub/.old.csv.0badf00d.part', 'half a file');
    dst.addFile('/dst/keep.csv', 'not ours to remove');
    const handles = [{ destination: memoryDestination('dst'), storage: dst }];
    const memory = processMemory(handles);
    await pass(handles, memory);
    expect(dst.has('/dst/sub/.old.csv.0badf00d.part')).toBe(false);
    expect(dst.has('/dst/keep.csv')).toBe(true);
    const listsAfter = (): number => dst.calls.filter((call) => call.op === 'list').length;

    // A quiet pass does not walk the destination again.
    const lists = listsAfter();
    await pass(handles, memory);
    expect(listsAfter()).toBe(lists);

    // A copy that fails may leave a temporary behind: the next pass looks again.
    await addIncoming('a.csv', 'a\n');
    dst.beforeOp = (op, path) => {
      if (op === 'setTimes') {
        dst.addFile(`${path}.leftover`, 'x');
        throw new SyncError('E_CONNECTION', 'connection reset', { op, path });
      }
    };
    await pass(handles, memory);
    dst.beforeOp = () => undefined;
    dst.addFile('/dst/.a.csv.12345678.part', 'left by the failed copy');
    await pass(handles, memory);
    expect(listsAfter()).toBeGreaterThan(lists);
    expect(dst.has('/dst/.a.csv.12345678.part')).toBe(false);
    expect(dst.content('/dst/a.csv')).toBe('a\n');
  });

  it('cleaning a destination does not walk into another destination nested in it', async () => {
    const shared = new MemoryStorage();
    shared.addFile('/out/sub/.old.csv.0badf00d.part', 'left by a crash');
    shared.addFile('/out/inner/.busy.csv.12345678.part', 'a copy to inner in flight');
    const handles = [
      { destination: memoryDestination('outer', { path: '/out' }), storage: shared },
      { destination: memoryDestination('inner', { path: '/out/inner' }), storage: shared },
    ];
    await pass(handles, { reportedUnmatched: new Set(), destinationsToClean: new Set(['outer']) });
    expect(shared.has('/out/sub/.old.csv.0badf00d.part')).toBe(false);
    expect(shared.has('/out/inner/.busy.csv.12345678.part')).toBe(true);
  });

  it('a file a crash left renamed aside mid-release is put back and released without copying again', async () => {
    // As if the copier died after renaming s.csv aside: its delivery is recorded, the name is free.
    await addIncoming('s.csv', 'second\n');
    await ledger.recordDelivery({
      relPath: 's.csv',
      sizeBytes: 7,
      mtimeMs: MTIME_MS,
      destination: 'dst',
      dstPath: '/dst/s.csv',
      deliveredAtMs: Date.now(),
    });
    await rename(join(incoming, 's.csv'), releaseAsidePath(join(incoming, 's.csv')) ?? '');
    const dst = new MemoryStorage();
    const handles = [{ destination: memoryDestination('dst'), storage: dst }];
    const reports = await pass(handles, processMemory(handles));
    expect(dst.calls.some((call) => call.op === 'upload')).toBe(false);
    expect(reports.find((report) => report.name === '(incoming)')).toMatchObject({ done: 1 });
    expect(await readdir(incoming)).toEqual([]);
  });

  it('--dry-run touches no destination and writes nothing to the ledger', async () => {
    await addIncoming('a.csv', 'a\n');
    const dst = new MemoryStorage();
    dst.addFile('/dst/.left.csv.0badf00d.part', 'leftover');
    const handles = [{ destination: memoryDestination('dst'), storage: dst }];
    const plan: string[] = [];
    await pass(handles, processMemory(handles), { dryRun: true, onPlan: (line) => plan.push(line) });
    expect(dst.calls).toEqual([]);
    expect(plan).toEqual([
      `would copy ${join(incoming, 'a.csv')} → dst:/dst/a.csv`,
      `would remove ${join(incoming, 'a.csv')} once delivered`,
    ]);
    expect(
      (await ledger.deliveredDestinations([{ relPath: 'a.csv', sizeBytes: 2, mtimeMs: MTIME_MS }])).get(
        `a.csv\u00002\u0000${MTIME_MS}`,
      )?.size ?? 0,
    ).toBe(0);
    expect(await readdir(incoming)).toEqual(['a.csv']);
  });

  it('a file replaced in incoming while it was delivered stays, and its new version goes out next pass', async () => {
    const dst = new MemoryStorage();
    const path = await addIncoming('v.csv', 'version 1\n');
    let replaced = false;
    dst.beforeOp = (op) => {
      // The fetcher renames version 2 in while version 1 is being committed at the destination.
      if (op === 'rename' && !replaced) {
        replaced = true;
        writeFileSync(`${path}.new`, 'version 2, longer\n');
        renameSync(`${path}.new`, path);
      }
    };
    const handles = [{ destination: memoryDestination('dst', { onConflict: 'overwrite' }), storage: dst }];
    const memory = processMemory(handles);
    await pass(handles, memory);
    expect(await readdir(incoming)).toEqual(['v.csv']);
    expect(dst.content('/dst/v.csv')).toBe('version 1\n');
    await pass(handles, memory);
    expect(dst.content('/dst/v.csv')).toBe('version 2, longer\n');
    expect(await readdir(incoming)).toEqual([]);
  });
});
