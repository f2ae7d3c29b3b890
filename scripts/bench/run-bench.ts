/**
 * `npm run bench [-- --quick] [--only fetch,copy,scale,mirror] [--runs N] [--keep] [--no-build]`
 *
 * Ours against OpenSSH sftp, rsync and rclone, in one run, as ratios. Installs
 * nothing: what is missing is named with the apt-get line to run, and a missing peer
 * only drops its rows. Starts its own sshd on 127.0.0.1 (the test fixture), writes
 * its data sets into a fresh temp folder, alternates the tools, and prints one table
 * per data set (median wall seconds, MB/s, files/s, peak RSS, each peer's time ÷ ours,
 * the sha256 check); the same figures go to bench-results/ as JSON. Sections:
 *  - fetch: (a) one big file, (b) many 4 KiB files, (c) files of 1–10 MiB, pulled by
 *    `fetch-files`, `sftp -b` (get -r), `rsync -a` over ssh and `rclone copy`;
 *  - copy: (b) and (c) fanned out to 3 local destinations by `copy-files`, 3× `cp -r`
 *    and 3× `rsync -a`;
 *  - scale: our fetch of 1k/10k/100k tiny files, time per file and peak RSS;
 *  - mirror: a 100,000-file local mirror against `rsync -a --delete` and `rclone sync`.
 * `--quick` runs small sets, once each without warm-up (about a minute). Exit 1 when any tool's output
 * differed from the data set (or a tool failed); a missed speed target does not fail.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type SshdFixture, startSshd } from '../../test/support/sshd-fixture.js';
import { type BenchContext, SECTION_NAMES, type SectionName } from './bench-context.js';
import { runCopySection } from './copy-section.js';
import { runFetchSection } from './fetch-section.js';
import { describeMachine, formatMachine } from './machine-info.js';
import { runMirrorSection } from './mirror-section.js';
import { checkPrerequisites } from './prerequisites.js';
import { formatTable, type TableResult } from './results-table.js';
import { runScaleSection } from './scale-section.js';

const PROJECT_ROOT = join(import.meta.dirname, '..', '..');

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'results-dir': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'npm run bench -- [--quick] [--only fetch,copy,scale,mirror] [--runs N] [--keep] [--no-build] [--results-dir DIR]\n',
  );
  process.exit(0);
}

const sections = parseSections(values.only);
// --quick only shows that the bench works: one timed run each, no warm-up.
const runs = values.runs === undefined ? (values.quick ? 1 : 3) : Number(values.runs);
if (!Number.isInteger(runs) || runs < 1)
  fail(`--runs must be a whole number of at least 1, got ${values.runs}`);

const startedMs = performance.now();
const prereqs = checkPrerequisites();
for (const line of prereqs.report()) process.stderr.write(`${line}\n`);
// A build of its own: other runs (a test suite) may rewrite dist/ while the bench runs its CLI.
const buildDir = values['no-build'] ? join(PROJECT_ROOT, 'dist') : build();
const cliDir = join(buildDir, 'cli');
for (const command of ['fetch-files', 'copy-files', 'mirror-files']) {
  if (!existsSync(join(cliDir, `${command}.js`)))
    fail(`${join(cliDir, command)}.js is missing: run npm run build (or leave out --no-build)`);
}

const workDir = await mkdtemp(join(tmpdir(), 'files-sync-link-bench-'));
const machine = describeMachine(workDir, prereqs);
const ctx: BenchContext = {
  projectRoot: PROJECT_ROOT,
  cliDir,
  workDir,
  quick: values.quick,
  runs,
  warmUp: !values.quick,
  prereqs,
  progress: (line) => process.stderr.write(`${line}\n`),
};
process.stdout.write(
  `# files-sync-link bench${values.quick ? ' (--quick)' : ''}: ${new Date().toISOString()}\n\nmachine: ${formatMachine(machine)}\nwork folder: ${workDir}; ${runs} timed run${runs === 1 ? '' : 's'} per tool${ctx.warmUp ? ' after one untimed warm-up' : ''}, tools alternating\n\n`,
);

const tables: TableResult[] = [];
const notes: string[] = [...prereqs.report()];
let sshd: SshdFixture | undefined;
try {
  const needsServer = sections.includes('fetch') || sections.includes('scale');
  const serverMissing = !prereqs.has('sshd') || !prereqs.has('ssh-keygen');
  if (needsServer && serverMissing) notes.push('fetch and scale sections skipped: no sshd to fetch from');
  else if (needsServer) sshd = await startSshd();
  const emit = (results: TableResult[]): void => {
    for (const table of results) {
      tables.push(table);
      process.stdout.write(`${formatTable(table)}\n`);
    }
  };
  for (const section of sections) {
    const sectionStartedMs = performance.now();
    if (section === 'fetch' && sshd) emit(await runFetchSection(ctx, sshd));
    if (section === 'copy') emit(await runCopySection(ctx));
    if (section === 'scale' && sshd) emit(await runScaleSection(ctx, sshd));
    if (section === 'mirror') {
      if (prereqs.has('rsync') || prereqs.has('rclone')) emit(await runMirrorSection(ctx));
      else notes.push('mirror section skipped: neither rsync nor rclone is installed');
    }
    ctx.progress(`section ${section} took ${((performance.now() - sectionStartedMs) / 1000).toFixed(0)} s`);
  }
} finally {
  await sshd?.stop();
  if (!values.keep) await rm(workDir, { recursive: true, force: true });
}

const failedChecks = tables.flatMap((table) =>
  table.rows
    .filter((row) => !row.sha256Ok)
    .map((row) => `${table.section} ${table.dataSet} ${row.tool}: ${row.sha256Detail}`),
);
const targets = tables.flatMap((table) =>
  table.targets.map((target) => ({ table: `${table.section} ${table.dataSet}`, ...target })),
);
const durationSeconds = Math.round((performance.now() - startedMs) / 1000);
const summary = [
  '## summary',
  '',
  failedChecks.length === 0
    ? `sha256 check: every tool produced exactly the data set's files in every run (${tables.length} tables)`
    : `sha256 check FAILED:\n${failedChecks.map((line) => `- ${line}`).join('\n')}`,
  ...targets.map(
    (target) =>
      `- ${target.table}: ${target.target}: ${target.measured ?? 'n/a'} ${target.met ? 'MET' : 'MISSED'}`,
  ),
  ...notes.map((note) => `- ${note}`),
  `bench took ${durationSeconds} s`,
];
process.stdout.write(`${summary.join('\n')}\n`);

const resultsDir = values['results-dir'] ?? join(PROJECT_ROOT, 'bench-results');
mkdirSync(resultsDir, { recursive: true });
const resultsPath = join(
  resultsDir,
  `bench-${new Date().toISOString().replace(/[:.]/g, '')}${values.quick ? '-quick' : ''}.json`,
);
writeFileSync(
  resultsPath,
  `${JSON.stringify({ quick: values.quick, runs, sections, machine, durationSeconds, sha256Ok: failedChecks.length === 0, notes, tables }, null, 2)}\n`,
);
process.stdout.write(`results: ${resultsPath}\n`);
process.exit(failedChecks.length === 0 ? 0 : 1);

function parseSections(only: string | undefined): SectionName[] {
  if (only === undefined) return [...SECTION_NAMES];
  const names = only.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !SECTION_NAMES.includes(name as SectionName));
  if (unknown.length > 0) fail(`--only takes ${SECTION_NAMES.join(', ')}; unknown: ${unknown.join(', ')}`);
  return SECTION_NAMES.filter((name) => names.includes(name));
}

/**
 * The CLI as users run it, compiled from the current sources into a folder of the bench's
 * own inside the project (so its packages resolve from node_modules). tsc still emits on
 * type errors. Returns the folder.
 */
function build(): string {
  const outDir = join(PROJECT_ROOT, 'bench-results', 'build');
  try {
    execFileSync(
      process.execPath,
      [
        join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        join(PROJECT_ROOT, 'tsconfig.build.json'),
        '--outDir',
        outDir,
      ],
      { stdio: 'inherit' },
    );
  } catch {
    process.stderr.write('bench: tsc reported errors (see above); measuring what it emitted\n');
  }
  return outDir;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}
