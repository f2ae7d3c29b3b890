/**
 * `status` after passes with successes and failures (text and JSON), and what the
 * console shows: a live progress line and a summary table on a terminal, none of it
 * in a pipe or in the JSON logs.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, jsonLines, runCli } from '../support/run-cli.js';
import { freePort, requireSshdOrSkip, type SshdFixture, startSshd } from '../support/sshd-fixture.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const execFileAsync = promisify(execFile);
const run = requireSshdOrSkip();

interface StatusJson {
  command: string;
  rows: {
    name: string;
    lastResult?: string;
    lastPassFiles?: number;
    lastPassBytes?: number;
    totalFiles: number;
    totalBytes: number;
    passes: number;
    filesWaiting?: number;
    lastError?: string;
    lastPassAt?: string;
  }[];
}

describe.skipIf(!run)('status and console output', () => {
  let sshd: SshdFixture;
  let temp: TempDir;
  let fetcherConfig: string;
  let copierConfig: string;
  const outbound = (): string => join(sshd.rootDir, 'outbound');

  beforeAll(async () => {
    sshd = await startSshd();
    temp = await makeTempDir('status-');
    await mkdir(outbound(), { recursive: true });
    const old = new Date(Date.now() - 3_600_000);
    for (let i = 0; i < 4; i += 1) {
      const path = join(outbound(), `report-${i}.csv`);
      await writeFile(path, `row,${i}\n`.repeat(100 * (i + 1)));
      await utimes(path, old, old);
    }
    const deadPort = await freePort();
    fetcherConfig = join(temp.path, 'fetcher.yml');
    await writeFile(
      fetcherConfig,
      `incoming: data/incoming
state_dir: state
log_dir: log
sources:
  - name: good
    host: 127.0.0.1
    port: ${sshd.port}
    username: ${sshd.username}
    private_key: ${sshd.clientKeyPath}
    known_hosts: ${sshd.knownHostsPath}
    remote_dir: ${outbound()}
  - name: down
    host: 127.0.0.1
    port: ${deadPort}
    username: nobody
    private_key: ${sshd.clientKeyPath}
    insecure_skip_host_key_check: true
    remote_dir: /outbound
    connect_timeout: 2s
    retries: 0
`,
    );
    copierConfig = join(temp.path, 'copier.yml');
    // "blocked" cannot be created: its parent is a regular file.
    await writeFile(join(temp.path, 'not-a-folder'), 'x');
    await writeFile(
      copierConfig,
      `incoming: data/incoming
state_dir: state
log_dir: log
destinations:
  - name: ok
    path: data/out/ok
  - name: blocked
    path: not-a-folder/out
`,
    );
  });
  afterAll(async () => {
    await sshd?.stop();
    await temp?.remove();
  });

  it('fetch-files status: the good source ok with its totals, the down one failed with its error', async () => {
    const before = await runCli('fetch-files', ['status', '--config', fetcherConfig, '--json']);
    expect(before.code).toBe(0);
    expect(
      (JSON.parse(before.stdout) as StatusJson).rows.map((row) => [row.name, row.lastResult, row.passes]),
    ).toEqual([
      ['good', undefined, 0],
      ['down', undefined, 0],
    ]);

    const pass = await runCli('fetch-files', ['--config', fetcherConfig, '--stop-on-loop', '1']);
    expect(pass.code).toBe(1);
    const again = await runCli('fetch-files', ['--config', fetcherConfig, '--stop-on-loop', '1']);
    expect(again.code).toBe(1);

    const json = await runCli('fetch-files', ['status', '--config', fetcherConfig, '--json']);
    expect(json.code).toBe(1);
    const status = JSON.parse(json.stdout) as StatusJson;
    expect(status.command).toBe('fetch-files');
    const good = status.rows.find((row) => row.name === 'good');
    const down = status.rows.find((row) => row.name === 'down');
    expect(good).toMatchObject({
      lastResult: 'ok',
      lastPassFiles: 0,
      totalFiles: 4,
      passes: 2,
      filesWaiting: 0,
    });
    // Four files of `row,i\n` (6 bytes) × 100, 200, 300, 400 lines.
    expect(good?.totalBytes).toBe(6 * (100 + 200 + 300 + 400));
    expect(good?.lastError).toBeUndefined();
    expect(down).toMatchObject({ lastResult: 'failed', totalFiles: 0, passes: 2 });
    expect(down?.lastError).toMatch(/^E_CONNECTION: .*127\.0\.0\.1/);
    expect(Date.parse(down?.lastPassAt ?? '')).toBeGreaterThan(Date.now() - 60_000);

    const text = await runCli('fetch-files', ['status', '--config', fetcherConfig]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(
      /good: last pass \S+ ok — 0 files, 0 B .*total 4 files, .* over 2 passes; 0 waiting/,
    );
    expect(text.stdout).toMatch(/down: last pass \S+ failed/);
    expect(text.stdout).toMatch(/last error: E_CONNECTION: /);
  });

  it('copy-files status: a blocked destination shows its waiting files and error', async () => {
    const pass = await runCli('copy-files', ['--config', copierConfig, '--stop-on-loop', '1']);
    expect(pass.code).toBe(1);
    const json = await runCli('copy-files', ['status', '--config', copierConfig, '--json']);
    const status = JSON.parse(json.stdout) as StatusJson;
    expect(status.rows.find((row) => row.name === 'ok')).toMatchObject({
      lastResult: 'ok',
      lastPassFiles: 4,
      totalFiles: 4,
    });
    const blocked = status.rows.find((row) => row.name === 'blocked');
    expect(blocked).toMatchObject({ lastResult: 'failed', lastPassFiles: 0, filesWaiting: 4 });
    expect(blocked?.lastError).toMatch(/not-a-folder/);
    expect(json.code).toBe(1);
  });

  it('in a pipe: JSON lines only, no progress line and no table', async () => {
    const big = join(outbound(), 'big.bin');
    await writeFile(big, randomBytes(40 * 1024 * 1024));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(big, old, old);
    const result = await runCli('fetch-files', ['--config', fetcherConfig, '--stop-on-loop', '1']);
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toContain('\r');
    for (const line of result.stderr.trim().split('\n'))
      expect(() => JSON.parse(line) as unknown).not.toThrow();
    const logs = await readFile(join(temp.path, 'log', 'all-debug.log'), 'utf8');
    expect(logs).not.toContain('\r');
    expect(logs).not.toMatch(/ETA/);
    expect(
      jsonLines(result.stderr).some(
        (line) => line.event === 'pass-summary' && line.name === 'good' && line.done === 1,
      ),
    ).toBe(true);
  });

  it('on a terminal: a live progress line with a bar for a big file, and a summary table', async () => {
    const big = join(outbound(), 'big-2.bin');
    await writeFile(big, randomBytes(48 * 1024 * 1024));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(big, old, old);
    // `script` gives the command a pseudo-terminal, as an operator's shell would.
    const command = `${process.execPath} ${cliPath('fetch-files')} --config ${fetcherConfig} --stop-on-loop 1`;
    const { stdout } = await execFileAsync('script', ['-qfec', command, '/dev/null'], {
      env: { ...process.env, NO_COLOR: '1', TERM: 'xterm' },
      timeout: 60_000,
    }).catch((err: { stdout: string }) => ({ stdout: err.stdout }));
    // eslint-disable-next-line no-control-regex -- the terminal escape that clears the line is what we look for.
    expect(stdout).toMatch(/\r\u001b\[2K\d+\/\d+ files, /);
    expect(stdout).toMatch(/\[[#.]{20}\] .*big-2\.bin/);
    expect(stdout).toMatch(
      /pass 1\r?\nsource\s+listed\s+selected\s+fetched\s+skipped\s+failed\s+waiting\s+bytes\s+MB\/s\s+time/,
    );
    expect(stdout).toMatch(/\ngood\s+\d+\s+\d+\s+1\s+/);
    expect(stdout).toMatch(/down: E_CONNECTION: /);
  });
});
