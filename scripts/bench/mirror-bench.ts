/**
 * Mirror benchmark: `npx tsx scripts/bench/mirror-bench.ts [--files N] [--rounds R] [--keep]`.
 *
 * Builds a tree of N small files (default 100,000, in N/100 folders) in a fresh folder
 * under the OS temp folder, and gives each tool a replica of its own, made fresh and
 * filled once untimed (deleting and refilling one folder distorts timings on this
 * machine's file system, see STACK.md). Then, in one run, alternating the tools:
 *  - "unchanged": each tool syncs an already equal replica (after one untimed warm-up
 *    run of the same tool), R rounds;
 *  - "1% changed": each round rewrites a different 1% of the source files (new content,
 *    new mtime), warms the caches (a stat walk of the source and of every replica, and a
 *    read of the changed files), then times each tool once on that change.
 * Tools: ours (`node dist/cli/mirror-files.js SRC DST --once`, as a user runs it),
 * `rsync -a --delete SRC/ DST/`, `rclone sync SRC DST --transfers 16 --config /dev/null`.
 * Prints medians and the ratio peer/ours (above 1: ours is faster), compares every
 * replica with the source at the end (`diff -rq`), and writes the figures as JSON under
 * bench-results/. Ours syncs each copied file before its rename; rsync and rclone do not.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const FILE_COUNT = Number(values.files);
const ROUNDS = Math.max(1, Number(values.rounds));
const FILES_PER_FOLDER = 100;
const PROJECT_ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'mirror-files.js');

type ToolName = 'ours' | 'rsync' | 'rclone';
const TOOLS: ToolName[] = ['ours', 'rsync', 'rclone'];

const base = mkdtempSync(join(tmpdir(), 'mirror-bench-'));
const source = join(base, 'src');
const replicaOf = (tool: ToolName) => join(base, `replica-${tool}`);
const stateDir = join(base, 'ours-state');

function commandFor(tool: ToolName): [string, string[]] {
  const dst = replicaOf(tool);
  switch (tool) {
    case 'ours':
      return [process.execPath, [CLI, source, dst, '--once', '--state-dir', stateDir, '--concurrency', '16']];
    case 'rsync':
      return ['rsync', ['-a', '--delete', `${source}/`, `${dst}/`]];
    case 'rclone':
      return ['rclone', ['sync', source, dst, '--transfers', '16', '--config', '/dev/null']];
  }
}

function runTool(tool: ToolName): number {
  const [command, args] = commandFor(tool);
  const startedMs = performance.now();
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
  const elapsedMs = performance.now() - startedMs;
  if (result.status !== 0) {
    throw new Error(`${tool} failed (exit ${result.status}): ${result.stderr.toString().slice(-2000)}`);
  }
  return elapsedMs;
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

function buildSource(): void {
  const oldSeconds = Math.floor(Date.now() / 1000) - 86_400;
  for (let index = 0; index < FILE_COUNT; index += 1) {
    const path = join(source, pathOf(index));
    if (index % FILES_PER_FOLDER === 0) mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content(index, 0));
    utimesSync(path, oldSeconds, oldSeconds);
  }
  mkdirSync(join(source, 'empty-folder'), { recursive: true });
}

/** Rewrites 1% of the files, a different set each round: new bytes, new mtime. */
function changeOnePercent(round: number): string[] {
  const changed: string[] = [];
  const seconds = Math.floor(Date.now() / 1000) - 3_600 + round;
  for (let index = round; index < FILE_COUNT; index += 100) {
    const path = join(source, pathOf(index));
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

function warmUp(changed: readonly string[]): void {
  statWalk(source);
  for (const tool of TOOLS) statWalk(replicaOf(tool));
  for (const path of changed) readFileSync(path);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** `equal`, or what differs; rclone sync leaves out empty folders unless given --create-empty-src-dirs. */
function compareTree(tool: ToolName): string {
  const result = spawnSync('diff', ['-rq', '--no-dereference', source, replicaOf(tool)], {
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status === 0) return 'equal';
  const lines = result.stdout.toString().trim().split('\n');
  if (lines.every((line) => line === `Only in ${source}: empty-folder`))
    return 'equal but for the empty folder';
  return `different (${lines.length} lines of diff -rq, first: ${lines[0] ?? ''})`;
}

function main(): void {
  // The CLI as users run it: compiled from the current sources.
  execFileSync(
    process.execPath,
    [
      join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(PROJECT_ROOT, 'tsconfig.build.json'),
    ],
    {
      stdio: 'inherit',
    },
  );
  const tools = {
    rsync: execFileSync('rsync', ['--version']).toString().split('\n')[0] ?? '',
    rclone: execFileSync('rclone', ['version']).toString().split('\n')[0] ?? '',
    node: process.version,
  };
  console.log(`base folder: ${base}`);
  console.log(`${tools.rsync}; ${tools.rclone}; node ${tools.node}; ${cpus().length} cores`);

  let startedMs = performance.now();
  buildSource();
  console.log(
    `built ${FILE_COUNT} files in ${FILE_COUNT / FILES_PER_FOLDER} folders in ${((performance.now() - startedMs) / 1000).toFixed(1)} s`,
  );
  for (const tool of TOOLS) {
    startedMs = performance.now();
    runTool(tool);
    console.log(`first fill (untimed) ${tool}: ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);
  }

  const unchanged: Record<ToolName, number[]> = { ours: [], rsync: [], rclone: [] };
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const tool of TOOLS) {
      runTool(tool); // warm-up: the same work, untimed
      unchanged[tool].push(runTool(tool));
    }
  }
  const changed: Record<ToolName, number[]> = { ours: [], rsync: [], rclone: [] };
  for (let round = 0; round < ROUNDS; round += 1) {
    const paths = changeOnePercent(round);
    // Alternate who goes first, so no tool always meets the coldest cache.
    const order = [...TOOLS.slice(round % TOOLS.length), ...TOOLS.slice(0, round % TOOLS.length)];
    for (const tool of order) {
      warmUp(paths);
      changed[tool].push(runTool(tool));
    }
  }

  const equal = Object.fromEntries(TOOLS.map((tool) => [tool, compareTree(tool)])) as Record<
    ToolName,
    string
  >;
  const row = (name: string, times: Record<ToolName, number[]>) => {
    const ours = median(times.ours);
    return {
      scenario: name,
      oursMs: Math.round(ours),
      rsyncMs: Math.round(median(times.rsync)),
      rcloneMs: Math.round(median(times.rclone)),
      rsyncOverOurs: Number((median(times.rsync) / ours).toFixed(2)),
      rcloneOverOurs: Number((median(times.rclone) / ours).toFixed(2)),
      runsMs: Object.fromEntries(TOOLS.map((tool) => [tool, times[tool].map(Math.round)])),
    };
  };
  const rows = [row('unchanged', unchanged), row('1% changed', changed)];
  console.log('');
  console.log(
    `| scenario (${FILE_COUNT} files, median of ${ROUNDS}) | ours | rsync -a --delete | rclone sync | rsync/ours | rclone/ours |`,
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const item of rows) {
    console.log(
      `| ${item.scenario} | ${item.oursMs} ms | ${item.rsyncMs} ms | ${item.rcloneMs} ms | ${item.rsyncOverOurs} | ${item.rcloneOverOurs} |`,
    );
  }
  console.log(`replicas equal to the source at the end: ${JSON.stringify(equal)}`);

  const resultsDir = join(PROJECT_ROOT, 'bench-results');
  mkdirSync(resultsDir, { recursive: true });
  const out = join(resultsDir, `mirror-bench-${new Date().toISOString().replace(/[:.]/g, '')}.json`);
  writeFileSync(
    out,
    `${JSON.stringify({ files: FILE_COUNT, folders: FILE_COUNT / FILES_PER_FOLDER, rounds: ROUNDS, tools, cores: cpus().length, rows, equal }, null, 2)}\n`,
  );
  console.log(`wrote ${out}`);
}

try {
  main();
} finally {
  if (!values.keep) rmSync(base, { recursive: true, force: true });
}
