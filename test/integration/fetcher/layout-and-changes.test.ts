/**
 * Where fetched files land, and what happens when remote files change: layouts,
 * same names from two sources, a changed file fetched again (archive keeps both),
 * exactly once across passes and restarts, a file modified during its transfer.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, open, readFile, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileNameTimestamp } from '../../../src/actions/numbered-name.js';
import {
  fetchedLines,
  fetchedRemotePaths,
  hashTree,
  listFiles,
  listTemporaries,
  makeRemoteTree,
  runFetch,
  SLOW_TRANSFER_KEYS,
  sha256Of,
  summaryOf,
  waitFor,
  withLogs,
  writeFetcherConfig,
} from '../../support/fetcher-scenario.js';
import { collect, spawnCli } from '../../support/run-cli.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

describe('fetch-files: layouts and changes', () => {
  let sshd: SshdFixture;
  let temp: TempDir;
  let counter = 0;
  const fresh = (label: string): { remoteDir: string; dir: string } => {
    counter += 1;
    return {
      remoteDir: join(sshd.rootDir, `${label}-${counter}`),
      dir: join(temp.path, `${label}-${counter}`),
    };
  };

  beforeAll(async () => {
    sshd = await startSshd();
    temp = await makeTempDir('fetch-layout-');
  });
  afterAll(async () => {
    await sshd?.stop();
    await temp?.remove();
  });

  it('the default layout keeps two sources with the same file name apart; custom layouts are followed', async () => {
    const p1 = fresh('p1');
    const p2 = fresh('p2');
    const custom = fresh('custom');
    await makeRemoteTree(p1.remoteDir, { 'report.csv': 'from p1' });
    await makeRemoteTree(p2.remoteDir, { 'report.csv': 'from p2' });
    await makeRemoteTree(custom.remoteDir, { 'x/y/deep.csv': 'deep', 'top.csv': 'top' });
    const scenario = await writeFetcherConfig({
      sshd,
      dir: p1.dir,
      keys: { archive_layout: '{date}/{source}/{dir}/{name}' },
      sources: [
        { name: 'p1', remoteDir: p1.remoteDir },
        { name: 'p2', remoteDir: p2.remoteDir },
        {
          name: 'custom',
          remoteDir: custom.remoteDir,
          keys: { recursive: true, incoming_layout: 'flat-{source}/{name}' },
        },
      ],
    });

    const run = await runFetch(scenario);

    expect(run.code, run.stderr).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    expect(await hashTree(scenario.incoming)).toEqual(
      new Map([
        ['flat-custom/deep.csv', sha256Of('deep')],
        ['flat-custom/top.csv', sha256Of('top')],
        ['p1/report.csv', sha256Of('from p1')],
        ['p2/report.csv', sha256Of('from p2')],
      ]),
    );
    expect(await hashTree(scenario.archive ?? '')).toEqual(
      new Map([
        [`${today}/custom/top.csv`, sha256Of('top')],
        [`${today}/custom/x/y/deep.csv`, sha256Of('deep')],
        [`${today}/p1/report.csv`, sha256Of('from p1')],
        [`${today}/p2/report.csv`, sha256Of('from p2')],
      ]),
    );
  });

  it('a changed remote file is fetched again: incoming holds the new version, the archive keeps every version', async () => {
    const { remoteDir, dir } = fresh('changed');
    const v1MtimeMs = Date.UTC(2026, 0, 2, 3, 4, 5);
    const v2MtimeMs = Date.UTC(2026, 0, 3, 3, 4, 5);
    await makeRemoteTree(remoteDir, { 'report.csv': 'version 1', 'other.csv': 'unchanged' }, v1MtimeMs);
    const scenario = await writeFetcherConfig({ sshd, dir, sources: [{ name: 'chg', remoteDir }] });
    const first = await runFetch(scenario);
    expect(first.code, first.stderr).toBe(0);

    await makeRemoteTree(remoteDir, { 'report.csv': 'version 2, longer' }, v2MtimeMs);
    const second = await runFetch(scenario);

    expect(second.code, second.stderr).toBe(0);
    expect(fetchedRemotePaths(second)).toEqual([join(remoteDir, 'report.csv')]);
    expect(summaryOf(second, 'chg')).toMatchObject({ done: 1, alreadyDone: 1 });
    expect(await hashTree(join(scenario.incoming, 'chg'))).toEqual(
      new Map([
        ['other.csv', sha256Of('unchanged')],
        ['report.csv', sha256Of('version 2, longer')],
      ]),
    );
    expect((await stat(join(scenario.incoming, 'chg', 'report.csv'))).mtimeMs).toBe(v2MtimeMs);
    expect(await hashTree(join(scenario.archive ?? '', 'chg'))).toEqual(
      new Map([
        ['other.csv', sha256Of('unchanged')],
        ['report.csv', sha256Of('version 2, longer')],
        [`report.${fileNameTimestamp(v1MtimeMs)}.csv`, sha256Of('version 1')],
      ]),
    );

    // The copier took the file out of incoming; a third version still lands, and is archived beside the others.
    await rm(join(scenario.incoming, 'chg', 'report.csv'));
    await makeRemoteTree(remoteDir, { 'report.csv': 'version 3' }, v2MtimeMs + 60_000);
    const third = await runFetch(scenario);
    expect(fetchedRemotePaths(third)).toEqual([join(remoteDir, 'report.csv')]);
    expect(await readFile(join(scenario.incoming, 'chg', 'report.csv'), 'utf8')).toBe('version 3');
    expect(new Set((await hashTree(join(scenario.archive ?? '', 'chg'))).values())).toEqual(
      new Set(['unchanged', 'version 1', 'version 2, longer', 'version 3'].map(sha256Of)),
    );
  });

  it('exactly once: a second pass and a restarted fetcher fetch nothing', async () => {
    const { remoteDir, dir } = fresh('once');
    const files = Object.fromEntries(
      Array.from({ length: 12 }, (_, index) => [`f${index}.bin`, randomBytes(1000 + index)]),
    );
    await makeRemoteTree(remoteDir, files);
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      keys: { interval: '100ms' },
      sources: [{ name: 'once', remoteDir }],
    });

    const twoPasses = await runFetch(scenario, ['--stop-on-loop', '2']);

    expect(twoPasses.code, twoPasses.stderr).toBe(0);
    expect(twoPasses.summaries.map((line) => [line.passNumber, line.done, line.alreadyDone])).toEqual([
      [1, 12, 0],
      [2, 0, 12],
    ]);
    expect(fetchedLines(twoPasses)).toHaveLength(12);

    const restarted = await runFetch(scenario);
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(summaryOf(restarted, 'once')).toMatchObject({ listed: 12, done: 0, alreadyDone: 12, bytes: 0 });
    expect(fetchedLines(restarted)).toEqual([]);
    expect(await hashTree(join(scenario.incoming, 'once'))).toEqual(
      new Map(Object.entries(files).map(([name, content]) => [name, sha256Of(content)])),
    );
  });

  it('a file modified during its transfer is not committed as is, and is fetched once it is stable', async () => {
    const { remoteDir, dir } = fresh('during');
    await makeRemoteTree(remoteDir, {
      'appended.bin': randomBytes(12 * 1024 * 1024),
      'rewritten.bin': randomBytes(12 * 1024 * 1024),
    });
    const scenario = await writeFetcherConfig({
      sshd,
      dir,
      sources: [{ name: 'during', remoteDir, keys: { ...SLOW_TRANSFER_KEYS, after_fetch: 'delete' } }],
    });
    const child = spawnCli('fetch-files', ['--config', scenario.configPath, '--stop-on-loop', '1']);
    const done = collect(child, 60_000);

    // Both downloads under way: the partner appends to one and rewrites the other in place (same size).
    await waitFor('both temporaries', async () => (await listTemporaries(scenario.incoming)).length === 2);
    await appendFile(join(remoteDir, 'appended.bin'), 'one more line\n');
    const handle = await open(join(remoteDir, 'rewritten.bin'), 'r+');
    await handle.write(Buffer.from('REWRITTEN'), 0, 9, 0);
    await handle.close();
    const mtimeS = Date.now() / 1000 - 600;
    await utimes(join(remoteDir, 'rewritten.bin'), mtimeS, mtimeS);

    const run = withLogs(await done);

    expect(run.code, run.stderr).toBe(0);
    expect(fetchedLines(run)).toEqual([]);
    expect(await listFiles(scenario.incoming)).toEqual([]);
    expect(await listFiles(scenario.archive ?? '')).toEqual([]);
    expect(await listTemporaries(scenario.incoming, scenario.archive ?? '')).toEqual([]);
    expect(summaryOf(run, 'during')).toMatchObject({ done: 0, skipped: 2, failed: 0 });
    const skip = run.logs.find((line) => String(line.reason).startsWith('changed while it was fetched'));
    expect([...(skip?.examples as string[])].sort()).toEqual(['appended.bin', 'rewritten.bin']);
    // Not deleted: the partner's new version is all there is.
    expect(await listFiles(remoteDir)).toEqual(['appended.bin', 'rewritten.bin']);

    const remoteNow = await hashTree(remoteDir);
    const next = await runFetch(scenario);
    expect(next.code, next.stderr).toBe(0);
    expect(fetchedRemotePaths(next)).toEqual([
      join(remoteDir, 'appended.bin'),
      join(remoteDir, 'rewritten.bin'),
    ]);
    expect(await hashTree(join(scenario.incoming, 'during'))).toEqual(remoteNow);
    expect(await listFiles(remoteDir)).toEqual([]);
  });
});
