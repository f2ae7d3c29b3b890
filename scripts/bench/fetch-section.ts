/**
 * Section "fetch": each data set pulled from the bench's sshd by ours and each peer,
 * alternating, with the targets checked on the medians.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SshdFixture } from '../../test/support/sshd-fixture.js';
import { type BenchContext, compareTools } from './bench-context.js';
import {
  bigFileSet,
  type DataSetSpec,
  FULL_SIZES,
  mediumFilesSet,
  QUICK_SIZES,
  smallFilesSet,
  totalBytesOf,
  writeDataSet,
} from './data-sets.js';
import { fetchTools, OURS_FETCH } from './fetch-tools.js';
import { buildRows, speedTarget, type TableResult, type TargetCheck, type ToolRow } from './results-table.js';

export async function runFetchSection(ctx: BenchContext, sshd: SshdFixture): Promise<TableResult[]> {
  const sizes = ctx.quick ? QUICK_SIZES : FULL_SIZES;
  const sets = [
    bigFileSet(sizes.bigBytes),
    smallFilesSet(sizes.smallFiles),
    mediumFilesSet(sizes.mediumFiles),
  ];
  const tables: TableResult[] = [];
  for (const spec of sets) tables.push(await fetchOneSet(ctx, sshd, spec));
  return tables;
}

async function fetchOneSet(ctx: BenchContext, sshd: SshdFixture, spec: DataSetSpec): Promise<TableResult> {
  const remoteDir = join(sshd.rootDir, spec.id);
  ctx.progress(`fetch ${spec.title}: writing the data set into ${remoteDir}`);
  const manifest = writeDataSet(remoteDir, spec);
  const localRoot = join(ctx.workDir, 'fetch', spec.id);
  await mkdir(localRoot, { recursive: true });
  const { tools, skipped } = fetchTools({
    sshd,
    cliDir: ctx.cliDir,
    remoteDir,
    localRoot,
    prereqs: ctx.prereqs,
  });
  const inputs = await compareTools(ctx, `fetch ${spec.id}`, tools, manifest, {
    // Many small files are kept until the bench ends: deleting them now would slow the next creates.
    deleteOutputs: spec.id !== 'b-small',
    timeoutMs: 20 * 60_000,
  });
  const dataSet = { files: spec.files.length, bytes: totalBytesOf(spec) };
  const rows = buildRows(inputs, dataSet, OURS_FETCH);
  return {
    section: 'fetch',
    dataSet: spec.id,
    title: spec.title,
    ...dataSet,
    runs: ctx.runs,
    rows,
    skipped,
    targets: fetchTargets(spec.id, rows),
    notes: [
      'ours: the real CLI with a fresh ledger, incoming and log folder each run, no archive, shipped defaults; every file synced to disk before its rename (the peers do not sync)',
      'rclone runs with --sftp-disable-hashcheck: by default it runs md5sum over a new ssh session after every file (about 80 ms each on this server)',
    ],
  };
}

function fetchTargets(dataSetId: string, rows: readonly ToolRow[]): TargetCheck[] {
  switch (dataSetId) {
    case 'b-small':
      return [
        speedTarget(rows, 'rclone', 2, 'ours ≥ 2× the files/s of rclone --transfers 16'),
        speedTarget(rows, 'sftp', 5, 'ours ≥ 5× the files/s of OpenSSH sftp -r'),
      ];
    case 'a-big':
      return [speedTarget(rows, 'sftp', 0.9, 'ours ≥ 0.9× the MB/s of OpenSSH sftp')];
    case 'c-medium': {
      const peers = rows.filter((row) => row.tool !== OURS_FETCH && row.timeOverOurs !== null);
      const best = peers.reduce<ToolRow | undefined>(
        (fastest, row) =>
          fastest === undefined || row.medianSeconds < fastest.medianSeconds ? row : fastest,
        undefined,
      );
      return best ? [speedTarget(rows, best.tool, 1, `ours ≥ 1.0× the best peer (${best.tool})`)] : [];
    }
    default:
      return [];
  }
}
