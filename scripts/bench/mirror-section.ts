/**
 * Section "mirror": a tree of small files (100,000 in 1,000 folders; `--quick`: 1,000)
 * mirrored locally by ours (`mirror-files SRC DST --once`), `rsync -a --delete` and
 * `rclone sync`. Each tool keeps a replica of its own, made fresh and filled once
 * untimed (deleting and refilling one folder distorts timings on this machine).
 * Then, alternating the tools:
 *  - "unchanged": each tool syncs its already equal replica (after an untimed run of
 *    the same tool), `runs` rounds;
 *  - "1% changed": each round rewrites a different 1% of the source (new bytes, new
 *    mtime), warms the caches (a stat walk of the source and of every replica, a read
 *    of the changed files), then times each tool once on that change.
 * At the end every replica must hold exactly the source's files (sha256).
 */
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchContext, quiesceDisk } from './bench-context.js';
import { type MeasuredRun, reportPathIn, runMeasured } from './measure-process.js';
import { buildRows, type RowInput, type TableResult } from './results-table.js';
import { checkTree, manifestOf } from './tree-check.js';

const FILES_PER_FOLDER = 100;
const OURS_MIRROR = 'ours mirror-files';

interface MirrorTool {
  name: string;
  display: string;
  replicaDir: string;
  command: [string, string[]];
}

export async function runMirrorSection(ctx: BenchContext): Promise<TableResult[]> {
  const fileCount = ctx.quick ? 1_000 : 100_000;
  const base = join(ctx.workDir, 'mirror');
  const sourceDir = join(base, 'src');
  const stateDir = join(base, 'ours-state');
  const cli = join(ctx.cliDir, 'mirror-files.js');
  const tools: MirrorTool[] = [
    {
      name: OURS_MIRROR,
      display: 'mirror-files SRC DST --once --concurrency 16',
      replicaDir: join(base, 'replica-ours'),
      command: [
        process.execPath,
        [
          cli,
          sourceDir,
          join(base, 'replica-ours'),
          '--once',
          '--state-dir',
          stateDir,
          '--concurrency',
          '16',
        ],
      ],
    },
  ];
  const skipped: { tool: string; reason: string }[] = [];
  if (ctx.prereqs.has('rsync')) {
    const replicaDir = join(base, 'replica-rsync');
    tools.push({
      name: 'rsync',
      display: 'rsync -a --delete SRC/ DST/',
      replicaDir,
      command: [ctx.prereqs.pathOf('rsync'), ['-a', '--delete', `${sourceDir}/`, `${replicaDir}/`]],
    });
  } else skipped.push({ tool: 'rsync', reason: 'rsync is not installed' });
  if (ctx.prereqs.has('rclone')) {
    const replicaDir = join(base, 'replica-rclone');
    tools.push({
      name: 'rclone',
      display: 'rclone sync SRC DST --transfers 16',
      replicaDir,
      command: [
        ctx.prereqs.pathOf('rclone'),
        ['sync', sourceDir, replicaDir, '--transfers', '16', '--config', '/dev/null'],
      ],
    });
  } else skipped.push({ tool: 'rclone', reason: 'rclone is not installed' });

  ctx.progress(`mirror: writing ${fileCount.toLocaleString('en-US')} files into ${sourceDir}`);
  buildSource(sourceDir, fileCount);
  let runNumber = 0;
  const run = async (tool: MirrorTool): Promise<MeasuredRun> => {
    runNumber += 1;
    const measured = await runMeasured(tool.command[0], tool.command[1], {
      timeoutMs: 30 * 60_000,
      reportPath: reportPathIn(ctx.workDir, `mirror-${runNumber}`),
    });
    if (measured.exitCode !== 0)
      throw new Error(`${tool.name} failed (exit ${measured.exitCode}): ${measured.stderrTail}`);
    return measured;
  };
  for (const tool of tools) {
    const first = await run(tool);
    ctx.progress(`  mirror first fill (untimed) ${tool.name}: ${first.wallSeconds.toFixed(2)} s`);
  }

  const unchanged = emptyInputs(tools);
  for (let round = 0; round < ctx.runs; round += 1) {
    for (const tool of tools) {
      await run(tool); // the same work, untimed: caches warm for this tool
      quiesceDisk();
      record(unchanged, tool, await run(tool));
      ctx.progress(`  mirror unchanged ${tool.name} run-${round + 1}: ${lastSeconds(unchanged, tool)} s`);
    }
  }
  const changed = emptyInputs(tools);
  for (let round = 0; round < ctx.runs; round += 1) {
    const paths = changeOnePercent(sourceDir, fileCount, round);
    const shift = round % tools.length;
    for (const tool of [...tools.slice(shift), ...tools.slice(0, shift)]) {
      warmUp(sourceDir, tools, paths);
      quiesceDisk();
      record(changed, tool, await run(tool));
      ctx.progress(`  mirror 1% changed ${tool.name} run-${round + 1}: ${lastSeconds(changed, tool)} s`);
    }
  }

  // Every replica against the source as it is now, file by file.
  const manifest = await manifestOf(sourceDir);
  for (const tool of tools) {
    const check = await checkTree(tool.replicaDir, manifest);
    for (const inputs of [unchanged, changed]) inputs.get(tool.name)?.checks.push(check);
  }
  const changedFiles = Math.ceil(fileCount / 100);
  const table = (
    title: string,
    dataSet: string,
    inputs: Map<string, RowInput>,
    files: number,
  ): TableResult => {
    const rows = buildRows([...inputs.values()], { files, bytes: 0 }, OURS_MIRROR);
    return {
      section: 'mirror',
      dataSet,
      title,
      files,
      bytes: 0,
      runs: ctx.runs,
      rows,
      skipped,
      targets: [],
      notes: [
        'files/s counts the files each tool had to look at (unchanged) or copy (1% changed); MB/s does not apply',
        'ours syncs each copied file to disk before its rename; rsync and rclone do not; no target is set for this section',
      ],
    };
  };
  return [
    table(
      `${fileCount.toLocaleString('en-US')} files, nothing changed`,
      'mirror-unchanged',
      unchanged,
      fileCount,
    ),
    table(
      `${fileCount.toLocaleString('en-US')} files, 1% (${changedFiles.toLocaleString('en-US')}) changed`,
      'mirror-changed',
      changed,
      changedFiles,
    ),
  ];
}

function emptyInputs(tools: readonly MirrorTool[]): Map<string, RowInput> {
  return new Map(
    tools.map((tool) => [
      tool.name,
      { tool: tool.name, command: tool.display, runsSeconds: [], peakRssBytes: [], checks: [] },
    ]),
  );
}

function record(inputs: Map<string, RowInput>, tool: MirrorTool, measured: MeasuredRun): void {
  const row = inputs.get(tool.name);
  row?.runsSeconds.push(measured.wallSeconds);
  row?.peakRssBytes.push(measured.peakRssBytes);
}

function lastSeconds(inputs: Map<string, RowInput>, tool: MirrorTool): string {
  return (inputs.get(tool.name)?.runsSeconds.at(-1) ?? 0).toFixed(2);
}

function pathOf(index: number): string {
  const folder = `d${String(Math.floor(index / FILES_PER_FOLDER)).padStart(4, '0')}`;
  return join(folder, `f${String(index).padStart(6, '0')}.dat`);
}

function content(index: number, version: number): string {
  // 200–1,200 bytes, different per file and version.
  return `${index}:${version}:`.padEnd(
    200 + ((index * 7919) % 1000),
    String.fromCharCode(97 + ((index + version) % 26)),
  );
}

function buildSource(sourceDir: string, fileCount: number): void {
  const oldSeconds = Math.floor(Date.now() / 1000) - 86_400;
  for (let index = 0; index < fileCount; index += 1) {
    const path = join(sourceDir, pathOf(index));
    if (index % FILES_PER_FOLDER === 0) mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content(index, 0));
    utimesSync(path, oldSeconds, oldSeconds);
  }
  mkdirSync(join(sourceDir, 'empty-folder'), { recursive: true });
}

/** Rewrites 1% of the files, a different set each round: new bytes, new mtime. */
function changeOnePercent(sourceDir: string, fileCount: number, round: number): string[] {
  const changed: string[] = [];
  const seconds = Math.floor(Date.now() / 1000) - 3_600 + round;
  for (let index = round; index < fileCount; index += 100) {
    const path = join(sourceDir, pathOf(index));
    writeFileSync(path, content(index, round + 1));
    utimesSync(path, seconds, seconds);
    changed.push(path);
  }
  return changed;
}

/** Metadata of every entry below `root` into the cache, the way any sync tool will look at it. */
function statWalk(root: string): void {
  for (const name of readdirSync(root, { recursive: true }) as string[]) statSync(join(root, name));
}

function warmUp(sourceDir: string, tools: readonly MirrorTool[], changed: readonly string[]): void {
  statWalk(sourceDir);
  for (const tool of tools) statWalk(tool.replicaDir);
  for (const path of changed) readFileSync(path);
}
