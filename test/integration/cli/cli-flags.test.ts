import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, PROJECT_ROOT, runCli } from '../../support/run-cli.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const execFileAsync = promisify(execFile);

describe('CLI flags and exit codes', () => {
  let temp: TempDir;
  let home: string;

  beforeAll(async () => {
    temp = await makeTempDir('cli-');
    // A HOME holding the files etc/fetcher.yml names, so the example config is valid as shipped.
    home = join(temp.path, 'home');
    await mkdir(join(home, '.ssh'), { recursive: true });
    await execFileAsync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-f',
      join(home, '.ssh', 'id_ed25519'),
    ]);
    await writeFile(join(home, '.ssh', 'known_hosts'), '');
  });
  afterAll(async () => {
    await temp?.remove();
  });

  const env = (): Record<string, string> => ({ HOME: home, KEY_PASSPHRASE: 'unused-passphrase' });

  it.each(['fetch-files', 'copy-files'] as const)('%s --help prints usage and exits 0', async (command) => {
    const result = await runCli(command, ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: ${command}`);
    expect(result.stdout).toContain('--stop-on-loop N');
    expect(result.stdout).toContain('Exit codes');
  });

  it.each(['fetch-files', 'copy-files'] as const)('%s --version prints VERSION.txt', async (command) => {
    const version = (await readFile(join(PROJECT_ROOT, 'VERSION.txt'), 'utf8')).trim();
    const result = await runCli(command, ['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(`${command} ${version}`);
  });

  it.each([
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['--stop-on-loop', 'abc'], /--stop-on-loop expects a whole number .* got 'abc'/],
    [['--stop-on-loop', '0'], /--stop-on-loop expects a whole number/],
    [['--config'], /--config/],
    [['launch'], /unexpected argument 'launch'/],
    [['--json'], /--json applies to the status subcommand only/],
  ])('usage error %j is one line on stderr and exit 2', async (args, message) => {
    const result = await runCli('fetch-files', args);
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^fetch-files: E_USAGE: /);
    expect(lines[0]).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing config file is one line naming it, exit 2', async () => {
    const result = await runCli('copy-files', ['--config', join(temp.path, 'nope.yml'), '--dry-run']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(join(temp.path, 'nope.yml'));
    expect(result.stderr).toContain('no such file');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('fetch-files --dry-run with three mistakes in the example config prints all three and exits 2', async () => {
    const example = await readFile(join(PROJECT_ROOT, 'etc', 'fetcher.yml'), 'utf8');
    const broken = example
      .replace(/^concurrency_limit: 32 /m, 'concurrency_limit: many ')
      .replace(/^ {4}port: 22 /m, '    port: abc ')
      .replace(/^ {4}remote_dir: /m, '    remote_dri: ');
    expect(broken).not.toBe(example);
    const configPath = join(temp.path, 'fetcher.yml');
    await writeFile(configPath, broken);

    const result = await runCli('fetch-files', ['--config', configPath, '--dry-run'], { env: env() });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `${configPath}: concurrency_limit: expected an integer 1–256, got "many"`,
    );
    expect(result.stderr).toContain(`${configPath}: sources[0].port: expected an integer 1–65535, got "abc"`);
    expect(result.stderr).toMatch(
      new RegExp(`${configPath}: sources\\[0\\]\\.remote_dri: unknown key; did you mean "remote_dir"\\?`),
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('the example config as shipped is valid (a dry run gets past loading)', async () => {
    // A copy, so the relative log_dir and state_dir land in the temp folder, not in the repository.
    const configPath = join(temp.path, 'shipped-fetcher.yml');
    await writeFile(configPath, await readFile(join(PROJECT_ROOT, 'etc', 'fetcher.yml')));
    const result = await runCli('fetch-files', ['--config', configPath, '--dry-run', '--stop-on-loop', '1'], {
      env: env(),
      timeoutMs: 90_000,
    });
    // sftp.example.org is not reachable here: the source fails, which is exit 1, not a config error.
    expect(result.stderr).not.toContain('E_CONFIG');
    expect([0, 1]).toContain(result.code);
  });

  it('an unexpected bug exits 70 with one line that says where the full trace went', async () => {
    const logDir = join(temp.path, 'bug-logs');
    const configPath = join(temp.path, 'copier.yml');
    await writeFile(
      configPath,
      `incoming: in\nlog_dir: ${logDir}\ndestinations:\n  - name: out\n    path: out\n`,
    );
    const child = (await import('node:child_process')).spawn(
      process.execPath,
      ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'support', 'buggy-command.ts'), '--config', configPath],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const result = await collect(child, 30_000);
    expect(result.code).toBe(70);
    // Not a terminal: the console carries JSON log lines, plus exactly one line for the operator.
    const lines = result.stderr
      .trim()
      .split('\n')
      .filter((line) => !line.startsWith('{'));
    expect(lines).toHaveLength(1);
    expect(result.stderr).not.toMatch(/buggy-command\.ts/);
    expect(lines[0]).toContain('internal error');
    expect(lines[0]).toContain(join(logDir, 'all-debug.log'));
    const debugLog = await readFile(join(logDir, 'all-debug.log'), 'utf8');
    const fatal = debugLog
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: number; err?: { stack?: string } })
      .find((entry) => entry.err?.stack !== undefined);
    expect(fatal?.err?.stack).toMatch(/TypeError/);
    expect(fatal?.err?.stack).toMatch(/buggy-command\.ts/);
  });
});
