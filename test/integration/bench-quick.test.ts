/**
 * `npm run bench -- --quick` works end to end: it starts its own sshd, runs every
 * section against every installed peer, prints every table, writes the JSON, and
 * every tool's output passed the sha256 check. Speed is not checked here: the
 * figures of a quick run on a shared machine mean nothing.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, PROJECT_ROOT } from '../support/run-cli.js';
import { requireSshdOrSkip } from '../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

interface BenchJson {
  quick: boolean;
  sha256Ok: boolean;
  tables: {
    section: string;
    dataSet: string;
    rows: { tool: string; sha256Ok: boolean; runsSeconds: number[]; peakRssMiB: number | null }[];
    skipped: { tool: string }[];
  }[];
}

const EXPECTED_TABLES = [
  'fetch a-big',
  'fetch b-small',
  'fetch c-medium',
  'copy b-small',
  'copy c-medium',
  'scale scale-fetch',
  'scale scale-repass',
  'mirror mirror-unchanged',
  'mirror mirror-changed',
];

describe.runIf(requireSshdOrSkip())('npm run bench -- --quick', () => {
  let results: TempDir;
  let run: Awaited<ReturnType<typeof collect>>;

  beforeAll(async () => {
    results = await makeTempDir('bench-results-');
    // dist/ is fresh (the global setup built it): --no-build saves the bench's own compile.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(PROJECT_ROOT, 'scripts', 'bench', 'run-bench.ts'),
        '--quick',
        '--no-build',
        '--results-dir',
        results.path,
      ],
      { cwd: PROJECT_ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    run = await collect(child, 230_000, Date.now(), 'bench --quick');
  }, 240_000);

  afterAll(async () => {
    await results?.remove();
  });

  it('ends 0 and prints a table for every data set, with the sha256 check passed', () => {
    expect(run.code, `stderr:\n${run.stderr.slice(-4000)}\nstdout:\n${run.stdout.slice(-4000)}`).toBe(0);
    for (const heading of [
      '### fetch: (a) one file of 64 MiB',
      '### fetch: (b) 1,000 files of 4 KiB in 10 folders',
      '### fetch: (c) 20 files of 1–10 MiB',
      '### copy: (b) 1,000 files of 4 KiB in 10 folders, fanned out to 3 local destinations',
      '### copy: (c) 20 files of 1–10 MiB, fanned out to 3 local destinations',
      '### scale: fetch of tiny files',
      '### scale: second pass over the same files',
      '### mirror: 1,000 files, nothing changed',
      '### mirror: 1,000 files, 1% (10) changed',
    ]) {
      expect(run.stdout).toContain(heading);
    }
    expect(run.stdout).toContain(
      "sha256 check: every tool produced exactly the data set's files in every run",
    );
    expect(run.stdout).toMatch(/\| ours fetch-files \| \d+\.\d\d \|/);
    expect(run.stdout).not.toContain('FAILED');
  });

  it('writes the same figures as JSON: every table, every row checked and timed', async () => {
    const files = (await readdir(results.path)).filter((name) => name.endsWith('-quick.json'));
    expect(files).toHaveLength(1);
    const json = JSON.parse(await readFile(join(results.path, files[0] as string), 'utf8')) as BenchJson;
    expect(json).toMatchObject({ quick: true, sha256Ok: true });
    expect(json.tables.map((table) => `${table.section} ${table.dataSet}`)).toEqual(EXPECTED_TABLES);
    for (const table of json.tables) {
      expect(table.rows.length + table.skipped.length, `${table.section} ${table.dataSet}`).toBeGreaterThan(
        table.section === 'scale' ? 1 : 2,
      );
      for (const row of table.rows) {
        expect(row.sha256Ok, `${table.section} ${table.dataSet} ${row.tool}`).toBe(true);
        expect(row.runsSeconds.length).toBeGreaterThanOrEqual(1);
        expect(row.runsSeconds.every((seconds) => seconds > 0)).toBe(true);
      }
    }
    // Ours always runs (it needs nothing but the server): its rows are in every fetch and copy table.
    for (const table of json.tables.filter((item) => item.section === 'fetch' || item.section === 'copy'))
      expect(table.rows[0]?.tool).toMatch(/^ours /);
  });
});
