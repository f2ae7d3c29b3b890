/**
 * Section "copy": the copier fanning a data set out to three local destinations,
 * against three `cp -r` and three `rsync -a` running side by side. Each run starts
 * from its own fresh copy of the data set (copy-files empties its incoming).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { type BenchContext, type BenchTool, compareTools } from './bench-context.js';
import {
  type DataSetSpec,
  FULL_SIZES,
  mediumFilesSet,
  QUICK_SIZES,
  smallFilesSet,
  totalBytesOf,
  writeDataSet,
} from './data-sets.js';
import { buildRows, speedTarget, type TableResult } from './results-table.js';

const OURS_COPY = 'ours copy-files';
const DESTINATIONS = ['d1', 'd2', 'd3'];

export async function runCopySection(ctx: BenchContext): Promise<TableResult[]> {
  const sizes = ctx.quick ? QUICK_SIZES : FULL_SIZES;
  const tables: TableResult[] = [];
  for (const spec of [smallFilesSet(sizes.smallFiles), mediumFilesSet(sizes.mediumFiles)])
    tables.push(await copyOneSet(ctx, spec));
  return tables;
}

async function copyOneSet(ctx: BenchContext, spec: DataSetSpec): Promise<TableResult> {
  const root = join(ctx.workDir, 'copy', spec.id);
  const masterDir = join(root, 'master');
  ctx.progress(`copy ${spec.title}: writing the data set into ${masterDir}`);
  const manifest = writeDataSet(masterDir, spec);

  /** A fresh copy of the data set for one run (untimed), and its three destinations. */
  const freshRun = async (tool: string, runLabel: string) => {
    const runDir = join(root, `${tool}-${runLabel}`);
    await mkdir(runDir, { recursive: true });
    const srcDir = join(runDir, 'src');
    const copied = spawnSync('cp', ['-a', masterDir, srcDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (copied.status !== 0) throw new Error(`cp -a ${masterDir} failed: ${copied.stderr.toString()}`);
    return { runDir, srcDir, destinations: DESTINATIONS.map((name) => join(runDir, name)) };
  };

  const tools: BenchTool[] = [
    {
      name: OURS_COPY,
      display: 'copy-files --stop-on-loop 1 (3 destinations)',
      async prepare(runLabel) {
        const run = await freshRun('ours', runLabel);
        const configPath = join(run.runDir, 'copier.yml');
        const config = {
          incoming: run.srcDir,
          state_dir: join(run.runDir, 'state'),
          log_dir: join(run.runDir, 'log'),
          destinations: DESTINATIONS.map((name, index) => ({ name, path: run.destinations[index] })),
        };
        await writeFile(configPath, dump(config));
        return {
          command: process.execPath,
          args: [join(ctx.cliDir, 'copy-files.js'), '--config', configPath, '--stop-on-loop', '1'],
          outputDirs: run.destinations,
          warmDir: run.srcDir,
        };
      },
    },
    parallelShellTool(
      '3× cp -r',
      'cp -r SRC Dn (three at once)',
      freshRun,
      (src, dst) => `cp -r '${src}' '${dst}'`,
    ),
  ];
  const skipped: { tool: string; reason: string }[] = [];
  if (ctx.prereqs.has('rsync')) {
    tools.push(
      parallelShellTool(
        '3× rsync -a',
        'rsync -a SRC/ Dn/ (three at once)',
        freshRun,
        (src, dst) => `rsync -a '${src}/' '${dst}/'`,
      ),
    );
  } else skipped.push({ tool: '3× rsync -a', reason: 'rsync is not installed' });

  const inputs = await compareTools(ctx, `copy ${spec.id}`, tools, manifest, {
    deleteOutputs: spec.id !== 'b-small',
    timeoutMs: 20 * 60_000,
  });
  // Three copies of every file: rates count what was written.
  const dataSet = {
    files: spec.files.length * DESTINATIONS.length,
    bytes: totalBytesOf(spec) * DESTINATIONS.length,
  };
  const rows = buildRows(inputs, dataSet, OURS_COPY);
  return {
    section: 'copy',
    dataSet: spec.id,
    title: `${spec.title}, fanned out to 3 local destinations`,
    ...dataSet,
    runs: ctx.runs,
    rows,
    skipped,
    targets: [speedTarget(rows, '3× cp -r', 1, 'ours ≥ 1.0× three parallel cp -r')],
    notes: [
      'files and MB count all three copies; each run reads its own fresh copy of the data set',
      'ours verifies the size of every copy, keeps its mtime, syncs it to disk before its rename and records each delivery; cp and rsync sync nothing',
    ],
  };
}

function parallelShellTool(
  name: string,
  display: string,
  freshRun: (tool: string, runLabel: string) => Promise<{ srcDir: string; destinations: string[] }>,
  commandFor: (srcDir: string, dstDir: string) => string,
): BenchTool {
  return {
    name,
    display,
    async prepare(runLabel) {
      const run = await freshRun(name.replace(/\W+/g, '-'), runLabel);
      // `wait` for each job by number, so the shell fails when any copy failed.
      const jobs = run.destinations.map((dst) => `${commandFor(run.srcDir, dst)} &`).join(' ');
      const script = `${jobs} status=0; for job in $(jobs -p); do wait "$job" || status=1; done; exit $status`;
      return { command: 'bash', args: ['-c', script], outputDirs: run.destinations, warmDir: run.srcDir };
    },
  };
}
