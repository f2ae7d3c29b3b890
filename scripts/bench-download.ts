/**
 * Download throughput: our SFTP `download` against OpenSSH `sftp -b` (`get`), both
 * from the test sshd on loopback, same file, alternating runs, medians and ratio.
 *
 *   npx tsx scripts/bench-download.ts [--size-mib 256] [--runs 3] [--chunk-kib 255 | --chunk-bytes N] [--concurrency 16] [--ours-only]
 *
 * Each timed run writes a fresh file name in a fresh folder (see STACK.md on this
 * machine's ext4) after an untimed re-read of the source, so both tools start from
 * a warm page cache.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, openSync, writeSync, closeSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createSftpStorage } from '../src/storage/index.js';
import { descendantPids, startSshd } from '../test/support/sshd-fixture.js';
import { testTempRoot } from '../test/support/temp-dir.js';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    runs: { type: 'string', default: '3' },
    'chunk-kib': { type: 'string', default: '255' },
    'chunk-bytes': { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    'ours-only': { type: 'boolean', default: false },
  },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const runs = Number(values.runs);
const chunkSizeBytes = values['chunk-bytes']
  ? Number(values['chunk-bytes'])
  : Number(values['chunk-kib']) * 1024;
const readConcurrency = Number(values.concurrency);

const CLOCK_TICKS_PER_SECOND =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

const sshd = await startSshd();
const workDir = await mkdtemp(join(testTempRoot(), 'bench-'));
try {
  const remotePath = join(sshd.rootDir, 'big.bin');
  const expectedSha256 = makeRandomFile(remotePath, sizeBytes);
  const log = pino({ level: 'warn' });
  const storage = createSftpStorage({
    log,
    connection: {
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      auth: { kind: 'key', privateKeyPath: sshd.clientKeyPath },
      hostKey: { kind: 'known_hosts', knownHostsPath: sshd.knownHostsPath },
      connections: 1,
      connectTimeoutMs: 10_000,
      operationTimeoutMs: 30_000,
      keepaliveIntervalMs: 15_000,
      retries: 0,
      readConcurrency,
      chunkSizeBytes,
    },
  });

  let runNumber = 0;
  const freshTarget = async (): Promise<string> => {
    runNumber += 1;
    const dir = await mkdtemp(join(workDir, `run-${runNumber}-`));
    return join(dir, 'big.bin');
  };
  const ours = async (): Promise<Run> => {
    const localPath = await freshTarget();
    await warmSource(remotePath);
    const serverBefore = serverCpuSeconds();
    const cpuBefore = process.cpuUsage();
    const startedAt = performance.now();
    const result = await storage.download(remotePath, localPath);
    const seconds = (performance.now() - startedAt) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const clientCpuSeconds = (cpu.user + cpu.system) / 1e6;
    const serverCpu = serverCpuSeconds() - serverBefore;
    if (result.sha256 !== expectedSha256 || result.sizeBytes !== sizeBytes) {
      throw new Error(`our download is wrong: ${result.sizeBytes} bytes, sha256 ${result.sha256}`);
    }
    await rm(localPath);
    return { mbPerSecond: sizeBytes / 1e6 / seconds, clientCpuSeconds, serverCpuSeconds: serverCpu };
  };
  const openssh = async (): Promise<Run> => {
    const localPath = await freshTarget();
    const batchPath = `${localPath}.batch`;
    await writeFile(batchPath, `get ${remotePath} ${localPath}\n`);
    await warmSource(remotePath);
    const serverBefore = serverCpuSeconds();
    const startedAt = performance.now();
    // bash's `times` reports the CPU the sftp child used (user and system).
    const timesOutput = execFileSync(
      'bash',
      [
        '-c',
        'sftp "$@" >/dev/null && times',
        'bash',
        '-q',
        '-b',
        batchPath,
        '-P',
        String(sshd.port),
        '-i',
        sshd.clientKeyPath,
        '-o',
        `UserKnownHostsFile=${sshd.knownHostsPath}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        `${sshd.username}@${sshd.host}`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' },
    );
    const seconds = (performance.now() - startedAt) / 1000;
    const serverCpu = serverCpuSeconds() - serverBefore;
    if ((await stat(localPath)).size !== sizeBytes) throw new Error('sftp get produced a wrong size');
    await rm(localPath);
    return {
      mbPerSecond: sizeBytes / 1e6 / seconds,
      clientCpuSeconds: childCpuSeconds(timesOutput),
      serverCpuSeconds: serverCpu,
    };
  };
  const sshdPid = Number(readFileSync(join(sshd.dir, 'sshd.pid'), 'utf8').trim());
  /** CPU of the whole sshd tree: live processes plus what reaped children left in their parents' counters. */
  const serverCpuSeconds = (): number => {
    let ticks = 0;
    for (const pid of [sshdPid, ...descendantPids(sshdPid)]) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
        // utime, stime, cutime, cstime are fields 14-17 of stat(5); [0] here is field 3.
        ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      } catch {
        // Ended while we read: its time is in its parent's counters now.
      }
    }
    return ticks / CLOCK_TICKS_PER_SECOND;
  };

  console.log(
    `file ${sizeBytes / 1024 / 1024} MiB, ours: chunk ${chunkSizeBytes} bytes × ${readConcurrency} in flight, ${runs} runs each`,
  );
  await ours();
  if (!values['ours-only']) await openssh();
  const oursRuns: Run[] = [];
  const opensshRuns: Run[] = [];
  for (let run = 1; run <= runs; run += 1) {
    oursRuns.push(await ours());
    if (!values['ours-only']) opensshRuns.push(await openssh());
    console.log(
      `run ${run}: ours ${describeRun(oursRuns.at(-1))}` +
        (values['ours-only'] ? '' : ` | sftp ${describeRun(opensshRuns.at(-1))}`),
    );
  }
  const oursMedian = median(oursRuns.map((run) => run.mbPerSecond));
  console.log(
    `median ours ${format(oursMedian)} MB/s, CPU per GB: client ${perGb(oursRuns, 'clientCpuSeconds')} s, server ${perGb(oursRuns, 'serverCpuSeconds')} s`,
  );
  if (!values['ours-only']) {
    const opensshMedian = median(opensshRuns.map((run) => run.mbPerSecond));
    console.log(
      `median sftp ${format(opensshMedian)} MB/s, CPU per GB: client ${perGb(opensshRuns, 'clientCpuSeconds')} s, server ${perGb(opensshRuns, 'serverCpuSeconds')} s`,
    );
    console.log(`ratio ours/sftp ${(oursMedian / opensshMedian).toFixed(2)}`);
  }
  await storage.close();
} finally {
  await rm(workDir, { recursive: true, force: true });
  await sshd.stop();
}

interface Run {
  mbPerSecond: number;
  clientCpuSeconds: number;
  serverCpuSeconds: number;
}

function describeRun(run: Run | undefined): string {
  if (!run) return '-';
  return `${format(run.mbPerSecond)} MB/s (CPU client ${run.clientCpuSeconds.toFixed(2)} s, server ${run.serverCpuSeconds.toFixed(2)} s)`;
}

/** Median CPU seconds per 10^9 bytes moved. */
function perGb(list: Run[], key: 'clientCpuSeconds' | 'serverCpuSeconds'): string {
  return median(list.map((run) => (run[key] * 1e9) / sizeBytes)).toFixed(2);
}

/** The second line of bash's `times`: the children's user and system time, as `0m1.234s 0m0.567s`. */
function childCpuSeconds(timesOutput: string): number {
  const line = timesOutput.trim().split('\n').at(-1) ?? '';
  return line
    .split(' ')
    .map((field) => /^(\d+)m([\d.]+)s$/.exec(field))
    .reduce((sum, match) => sum + (match ? Number(match[1]) * 60 + Number(match[2]) : 0), 0);
}

function makeRandomFile(path: string, bytes: number): string {
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(4 * 1024 * 1024);
  const fd = openSync(path, 'w');
  for (let written = 0; written < bytes; written += block.length) {
    const piece = block.subarray(0, Math.min(block.length, bytes - written));
    randomFillSync(piece);
    hash.update(piece);
    writeSync(fd, piece);
  }
  closeSync(fd);
  return hash.digest('hex');
}

async function warmSource(path: string): Promise<void> {
  for await (const _chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) {
    // Reading is the point: the page cache holds the file for the timed run.
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function format(value: number | undefined): string {
  return (value ?? 0).toFixed(0);
}
