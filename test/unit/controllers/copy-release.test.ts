/**
 * Releasing a delivered file from incoming: only the version that was delivered
 * leaves, even when the fetcher renames a new version onto the name at the last
 * moment; a crash mid-release leaves a name the next pass recovers.
 */
import { readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTemporaryName, temporaryPathFor } from '../../../src/actions/temporary-name.js';
import type { CopierConfig } from '../../../src/config/index.js';
import { listIncoming } from '../../../src/controllers/list-incoming.js';
import type { IncomingFile } from '../../../src/controllers/list-incoming.js';
import {
  recoverReleaseLeftovers,
  releaseAsidePath,
  releasedNameOf,
  releaseIncomingFile,
} from '../../../src/controllers/release-incoming-file.js';
import { openSqliteLedger, type SqliteLedger } from '../../../src/ledger/index.js';
import { createLocalStorage } from '../../../src/storage/index.js';
import type { Storage } from '../../../src/storage/storage.js';
import { captureLogger } from '../../support/capture-logger.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const MTIME_MS = Date.UTC(2026, 0, 5, 6, 7, 8);

let temp: TempDir;
let ledger: SqliteLedger;
let local: Storage;
let incoming: string;

beforeEach(async () => {
  temp = await makeTempDir('copy-release-');
  incoming = join(temp.path, 'incoming');
  ledger = openSqliteLedger({ stateDir: join(temp.path, 'state'), fileName: 'copy-files.sqlite' });
  local = createLocalStorage();
});
afterEach(async () => {
  await ledger?.close();
  await temp?.remove();
});

function config(overrides: Partial<CopierConfig> = {}): CopierConfig {
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
    destinations: [],
    ...overrides,
  };
}

async function delivered(relPath: string, content: string): Promise<IncomingFile> {
  const localPath = join(incoming, relPath);
  await local.mkdirp(join(localPath, '..'));
  await writeFile(localPath, content);
  await utimes(localPath, MTIME_MS / 1000, MTIME_MS / 1000);
  const file = { relPath, sizeBytes: Buffer.byteLength(content), mtimeMs: MTIME_MS, localPath };
  await ledger.recordDelivery({
    ...file,
    destination: 'dst',
    dstPath: `/dst/${relPath}`,
    deliveredAtMs: Date.now(),
  });
  return file;
}

async function deliveriesOf(file: IncomingFile): Promise<string[]> {
  const map = await ledger.deliveredDestinations([file]);
  return [...(map.values().next().value ?? [])];
}

/** The fetcher's move: a new version written under a temporary and renamed onto the name. */
async function fetcherReplaces(localPath: string, content: string): Promise<void> {
  const tempPath = temporaryPathFor(localPath);
  await writeFile(tempPath, content);
  await rename(tempPath, localPath);
}

/** A storage whose first rename is preceded by `before`: the fetcher acting at the worst moment. */
function beforeFirstRename(storage: Storage, before: () => Promise<void>): Storage {
  let fired = false;
  return {
    ...storage,
    async rename(fromPath, toPath, options) {
      if (!fired) {
        fired = true;
        await before();
      }
      return storage.rename(fromPath, toPath, options);
    },
  };
}

describe('releaseIncomingFile', () => {
  it('removes the delivered file, syncs, and forgets its deliveries; no leftovers', async () => {
    const file = await delivered('a/report.csv', 'delivered\n');
    const { log } = captureLogger();
    expect(await releaseIncomingFile({ config: config(), local, ledger, file, log })).toBe(true);
    expect(await readdir(join(incoming, 'a'))).toEqual([]);
    expect(await deliveriesOf(file)).toEqual([]);
  });

  it('refuses a file that changed after delivery: the new version stays, the deliveries too', async () => {
    const file = await delivered('report.csv', 'delivered\n');
    await writeFile(file.localPath, 'a new version, longer\n');
    const captured = captureLogger();
    expect(await releaseIncomingFile({ config: config(), local, ledger, file, log: captured.log })).toBe(
      false,
    );
    expect(await readFile(file.localPath, 'utf8')).toBe('a new version, longer\n');
    expect(await deliveriesOf(file)).toEqual(['dst']);
    expect(
      captured
        .lines()
        .some((line) => String(line.msg).includes('changed in incoming after it was delivered')),
    ).toBe(true);
  });

  it('refuses a same-size file with another mtime', async () => {
    const file = await delivered('report.csv', 'delivered\n');
    await utimes(file.localPath, MTIME_MS / 1000 + 5, MTIME_MS / 1000 + 5);
    const { log } = captureLogger();
    expect(await releaseIncomingFile({ config: config(), local, ledger, file, log })).toBe(false);
    expect(await readFile(file.localPath, 'utf8')).toBe('delivered\n');
  });

  it('a new version renamed in between the check and the removal is put back, not removed', async () => {
    const file = await delivered('report.csv', 'delivered\n');
    const racing = beforeFirstRename(local, () => fetcherReplaces(file.localPath, 'the new version\n'));
    const { log } = captureLogger();
    expect(await releaseIncomingFile({ config: config(), local: racing, ledger, file, log })).toBe(false);
    expect(await readFile(file.localPath, 'utf8')).toBe('the new version\n');
    expect(await readdir(incoming)).toEqual(['report.csv']);
  });

  it('the fetcher cleaning temporaries takes the renamed-aside file first: still released, no error', async () => {
    const file = await delivered('report.csv', 'delivered\n');
    const cleaning: Storage = {
      ...local,
      async remove(path) {
        // The fetcher's pass starts and removes every `.….part` in incoming, ours included.
        await rm(path, { force: true });
        return local.remove(path);
      },
    };
    const { log } = captureLogger();
    expect(await releaseIncomingFile({ config: config(), local: cleaning, ledger, file, log })).toBe(true);
    expect(await readdir(incoming)).toEqual([]);
    expect(await deliveriesOf(file)).toEqual([]);
  });

  it('done_dir: moves the delivered file there', async () => {
    const file = await delivered('x/report.csv', 'delivered\n');
    const { log } = captureLogger();
    const doneDir = join(temp.path, 'done');
    expect(await releaseIncomingFile({ config: config({ doneDir }), local, ledger, file, log })).toBe(true);
    expect(await readFile(join(doneDir, 'x', 'report.csv'), 'utf8')).toBe('delivered\n');
    expect((await stat(join(doneDir, 'x', 'report.csv'))).mtimeMs).toBe(MTIME_MS);
    expect(await readdir(join(incoming, 'x'))).toEqual([]);
  });

  it('done_dir: a new version renamed in at the last moment goes back to incoming', async () => {
    const file = await delivered('report.csv', 'delivered\n');
    const racing = beforeFirstRename(local, () => fetcherReplaces(file.localPath, 'the new version\n'));
    const { log } = captureLogger();
    const doneDir = join(temp.path, 'done');
    expect(await releaseIncomingFile({ config: config({ doneDir }), local: racing, ledger, file, log })).toBe(
      false,
    );
    expect(await readFile(file.localPath, 'utf8')).toBe('the new version\n');
    expect(await readdir(doneDir)).toEqual([]);
  });
});

describe('release leftovers after a crash', () => {
  it('aside names are temporaries, map back to their name, and never match a fetcher temporary', () => {
    const aside = releaseAsidePath('/in/dir/report.final.csv') ?? '';
    expect(aside).toMatch(/^\/in\/dir\/\.report\.final\.csv\.[0-9a-f]{8}\.release\.part$/);
    expect(isTemporaryName(basename(aside))).toBe(true);
    expect(releasedNameOf(basename(aside))).toBe('report.final.csv');
    for (const name of ['report.csv', 'x.release', 'y.release.part', 'z.12345678.release']) {
      expect(releasedNameOf(basename(temporaryPathFor(`/in/${name}`))), name).toBeUndefined();
    }
    expect(releaseAsidePath(`/in/${'n'.repeat(240)}`)).toBeUndefined();
  });

  it('are listed apart from files, put back when the name is free, removed when a newer file has it', async () => {
    await local.mkdirp(incoming);
    const freeAside = releaseAsidePath(join(incoming, 'free.csv')) ?? '';
    const takenAside = releaseAsidePath(join(incoming, 'taken.csv')) ?? '';
    await writeFile(freeAside, 'delivered, caught mid-release\n');
    await writeFile(takenAside, 'older\n');
    await writeFile(join(incoming, 'taken.csv'), 'newer\n');
    const { log } = captureLogger();
    const listing = await listIncoming({ local, incoming, minAgeMs: 0, nowMs: Date.now(), log });
    expect(listing.files.map((file) => file.relPath)).toEqual(['taken.csv']);
    expect(listing.releaseLeftovers.sort()).toEqual([freeAside, takenAside].sort());

    expect(await recoverReleaseLeftovers({ local, leftoverPaths: listing.releaseLeftovers, log })).toBe(2);
    expect((await readdir(incoming)).sort()).toEqual(['free.csv', 'taken.csv']);
    expect(await readFile(join(incoming, 'free.csv'), 'utf8')).toBe('delivered, caught mid-release\n');
    expect(await readFile(join(incoming, 'taken.csv'), 'utf8')).toBe('newer\n');
  });
});
