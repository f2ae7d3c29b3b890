/**
 * Section "scale": our fetcher alone on ever more tiny files (1,000, 10,000, 100,000;
 * `--quick`: 1,000 and 5,000). A full fetch (listing, selection, ledger lookups and
 * inserts, transfers) and a second pass over the same state (nothing new: listing,
 * selection and lookups only). Time per file must stay flat from the second-largest
 * size to the largest (a quadratic step would multiply it), and peak RSS stay under
 * 300 MiB.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import type { SshdFixture } from '../../test/support/sshd-fixture.js';
import { type BenchContext, type BenchTool, compareTools } from './bench-context.js';
import { tinyFilesSet, totalBytesOf, writeDataSet } from './data-sets.js';
import { fetcherConfig, oursFetchTool } from './fetch-tools.js';
import { buildRows, type TableResult, type TargetCheck, type ToolRow } from './results-table.js';

const MAX_RSS_MIB = 300;
/** Per-file time at the largest size may be at most this multiple of that at the size before. */
const MAX_PER_FILE_GROWTH = 1.5;

export async function runScaleSection(ctx: BenchContext, sshd: SshdFixture): Promise<TableResult[]> {
  const counts = ctx.quick ? [1_000, 5_000] : [1_000, 10_000, 100_000];
  const fetchRows: ToolRow[] = [];
  const repassRows: ToolRow[] = [];
  for (const count of counts) {
    const spec = tinyFilesSet(count);
    const remoteDir = join(sshd.rootDir, spec.id);
    ctx.progress(`scale ${spec.title}: writing the data set into ${remoteDir}`);
    const manifest = writeDataSet(remoteDir, spec);
    const localRoot = join(ctx.workDir, 'scale', String(count));
    await mkdir(localRoot, { recursive: true });
    const dataSet = { files: count, bytes: totalBytesOf(spec) };
    const label = `${count.toLocaleString('en-US')} files`;

    const fetchTool = {
      ...oursFetchTool({ sshd, cliDir: ctx.cliDir, remoteDir, localRoot, prereqs: ctx.prereqs }),
      name: label,
    };
    const fetched = await compareTools(ctx, `scale ${count}`, [fetchTool], manifest, {
      deleteOutputs: false,
      timeoutMs: 30 * 60_000,
    });
    fetchRows.push(...buildRows(fetched, dataSet, ''));

    // The same config every time: the untimed first run fills state and incoming, the timed ones find nothing new.
    const repassDir = join(localRoot, 'repass');
    await mkdir(repassDir, { recursive: true });
    const configPath = join(repassDir, 'fetcher.yml');
    await writeFile(configPath, dump(fetcherConfig(sshd, repassDir, remoteDir)));
    const repassTool: BenchTool = {
      name: label,
      display: 'fetch-files --stop-on-loop 1, second pass (nothing new)',
      prepare: () =>
        Promise.resolve({
          command: process.execPath,
          args: [join(ctx.cliDir, 'fetch-files.js'), '--config', configPath, '--stop-on-loop', '1'],
          outputDirs: [join(repassDir, 'incoming', 'bench')],
          warmDir: remoteDir,
        }),
    };
    const repassed = await compareTools(
      { ...ctx, warmUp: true },
      `scale ${count} re-pass`,
      [repassTool],
      manifest,
      {
        deleteOutputs: false,
        timeoutMs: 30 * 60_000,
      },
    );
    repassRows.push(...buildRows(repassed, dataSet, ''));
  }
  return [
    scaleTable('fetch of tiny files, fresh state each run', 'scale-fetch', fetchRows, ctx.runs),
    scaleTable('second pass over the same files (nothing new)', 'scale-repass', repassRows, ctx.runs),
  ];
}

function scaleTable(title: string, dataSet: string, rows: ToolRow[], runs: number): TableResult {
  const perFileMicros = rows.map((row) => (row.medianSeconds * 1e6) / filesOf(row));
  const last = perFileMicros.length - 1;
  const growth = last >= 1 ? (perFileMicros[last] as number) / (perFileMicros[last - 1] as number) : null;
  const largest = rows[last];
  const targets: TargetCheck[] = [
    {
      target: `time per file at ${largest?.tool ?? '?'} ÷ at ${rows[last - 1]?.tool ?? '?'} (flat: no quadratic step)`,
      measured: growth === null ? null : Math.round(growth * 100) / 100,
      needed: MAX_PER_FILE_GROWTH,
      atMost: true,
      met: growth !== null && growth <= MAX_PER_FILE_GROWTH,
    },
    {
      target: `peak RSS at ${largest?.tool ?? '?'}`,
      measured: largest?.peakRssMiB ?? null,
      needed: MAX_RSS_MIB,
      atMost: true,
      unit: ' MiB',
      met:
        largest?.peakRssMiB !== null && largest?.peakRssMiB !== undefined && largest.peakRssMiB < MAX_RSS_MIB,
    },
  ];
  return {
    section: 'scale',
    dataSet,
    title,
    files: largest ? filesOf(largest) : 0,
    bytes: 0,
    runs,
    rows,
    skipped: [],
    targets,
    notes: [
      `time per file: ${rows.map((row, index) => `${row.tool}: ${Math.round(perFileMicros[index] as number)} µs`).join(', ')} (start-up, about 0.3 s, weighs on the smallest)`,
      'tiny files of 100–400 bytes, 100 per folder; ours with the shipped defaults',
    ],
  };
}

function filesOf(row: ToolRow): number {
  return Number(row.tool.replace(/[^\d]/g, ''));
}
