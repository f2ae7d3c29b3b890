/**
 * A destination that is full or unreachable fails alone: the others get their
 * files, its files wait in incoming, and its error is logged once per pass — not
 * once per file.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  outputOf,
  errorLines,
  findTemporaries,
  hashTree,
  passSummary,
  readTree,
  seededBytes,
  sftpDestination,
  sha256Of,
  withLogs,
} from '../../support/copier-scenario.js';
import { collect } from '../../support/run-cli.js';
import { freePort, type SshdFixture, startSshd } from '../../support/sshd-fixture.js';

const FILE_COUNT = 30;

describe('copy-files with a full and an unreachable destination', () => {
  let scenario: CopierScenario;

  beforeAll(async () => {
    scenario = await CopierScenario.create('copier-failing-');
  });
  afterAll(async () => {
    await scenario?.remove();
  });

  it('delivers to the good destination, logs each failing one once per pass, keeps their files', async () => {
    const expected: Record<string, string> = {};
    for (let i = 0; i < FILE_COUNT; i += 1) {
      const content = `file ${i}\n`.repeat(i + 1);
      await scenario.addFile(`batch/f-${String(i).padStart(2, '0')}.csv`, content);
      expected[`batch/f-${String(i).padStart(2, '0')}.csv`] = sha256Of(content);
    }
    // A closed port: nothing listens there. The key and known_hosts only have to be valid.
    const closedPort = await freePort();
    const keyPath = scenario.path('client_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath], { stdio: 'pipe' });
    const knownHostsPath = scenario.path('known_hosts');
    await writeFile(knownHostsPath, '');
    await scenario.writeConfig({
      destinations: [
        { name: 'good', path: scenario.path('out', 'good') },
        // Far more than any disk here has free.
        { name: 'full', path: scenario.path('out', 'full'), min_free_space: '1000000GiB' },
        {
          name: 'gone',
          url: `sftp://nobody@127.0.0.1:${closedPort}/inbound`,
          private_key: keyPath,
          known_hosts: knownHostsPath,
          retries: 3,
        },
      ],
    });

    const result = await scenario.run(['--stop-on-loop', '2']);
    expect(result.code, outputOf(result)).toBe(1);
    // Fast: a refused connection is not retried file by file.
    expect(result.durationMs).toBeLessThan(10_000);

    expect(await hashTree(scenario.path('out', 'good'))).toEqual(expected);
    expect(await readTree(scenario.path('out', 'full'))).toEqual({});
    expect(Object.keys(await readTree(scenario.incoming)).sort()).toEqual(Object.keys(expected).sort());

    const errors = errorLines(result.logs);
    const byDestination = (name: string): Record<string, unknown>[] =>
      errors.filter((line) => line.destination === name);
    expect(byDestination('gone'), result.stderr).toHaveLength(2);
    expect(byDestination('full'), result.stderr).toHaveLength(2);
    expect(errors).toHaveLength(4);
    expect(byDestination('gone')[0]).toMatchObject({ err: { code: 'E_CONNECTION' } });
    expect(String(byDestination('gone')[0]?.msg)).toContain(`127.0.0.1:${closedPort}`);
    expect(byDestination('full')[0]).toMatchObject({ err: { code: 'E_DISK_FULL' } });
    expect(String(byDestination('full')[0]?.msg)).toMatch(/min_free_space/);

    // Alone: the good destination did not wait for the unreachable one to give up connecting.
    const firstGoodCopy = result.logs.findIndex(
      (line) => line.destination === 'good' && line.outcome === 'copied',
    );
    const goneError = result.logs.indexOf(byDestination('gone')[0] as Record<string, unknown>);
    expect(firstGoodCopy).toBeGreaterThanOrEqual(0);
    expect(firstGoodCopy).toBeLessThan(goneError);

    for (const passNumber of [1, 2]) {
      expect(passSummary(result.logs, 'gone', passNumber)).toMatchObject({
        result: 'failed',
        waiting: FILE_COUNT,
        failed: 0,
      });
      expect(passSummary(result.logs, 'full', passNumber)).toMatchObject({ result: 'failed', done: 0 });
    }
    expect(passSummary(result.logs, 'good', 1)).toMatchObject({ result: 'ok', done: FILE_COUNT });
    expect(passSummary(result.logs, 'good', 2)).toMatchObject({ done: 0, alreadyDone: FILE_COUNT });
  });
});

describe('copy-files when the SFTP server dies mid-pass', () => {
  let sshd: SshdFixture;
  let scenario: CopierScenario;

  beforeAll(async () => {
    sshd = await startSshd();
    scenario = await CopierScenario.create('copier-server-dies-');
  });
  afterAll(async () => {
    await scenario?.remove();
    await sshd?.stop();
  });

  it('the local destination gets everything, the remote one fails once, and a rerun finishes the rest', async () => {
    const expected: Record<string, string> = {};
    for (let i = 0; i < 24; i += 1) {
      const content = seededBytes(500 + i, 3 * 1024 * 1024);
      await scenario.addFile(`f-${String(i).padStart(2, '0')}.bin`, content);
      expected[`f-${String(i).padStart(2, '0')}.bin`] = sha256Of(content);
    }
    const remoteDir = join(sshd.rootDir, 'dies');
    await scenario.writeConfig({
      concurrency_limit: 3,
      destinations: [
        { name: 'local', path: scenario.path('out', 'local') },
        sftpDestination(sshd, 'remote', remoteDir, { retries: 2, connect_timeout: '2s', connections: 2 }),
      ],
    });

    const child = scenario.spawn(['--stop-on-loop', '1']);
    const running = collect(child, 60_000);
    // Cut the server as soon as two files have landed there (told by the copier's log).
    let remoteCopies = 0;
    const cut = new Promise<void>((resolve) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        remoteCopies += chunk.toString().split('"destination":"remote","relPath"').length - 1;
        if (remoteCopies >= 2) resolve();
      });
    });
    await Promise.race([cut, running]);
    await sshd.stopServer();
    const first = withLogs(await running);
    expect(first.code, outputOf(first)).toBe(1);
    // The storage's connect retries are the only wait: files do not each retry a dead server.
    expect(first.durationMs).toBeLessThan(15_000);
    expect(await hashTree(scenario.path('out', 'local'))).toEqual(expected);
    // Whatever reached the remote under a real name is complete.
    const remoteFirst = await hashTree(remoteDir);
    for (const [relPath, sha256] of Object.entries(remoteFirst)) {
      if (!relPath.startsWith('.')) expect(sha256, relPath).toBe(expected[relPath]);
    }
    const remoteErrors = errorLines(first.logs).filter((line) => line.destination === 'remote');
    expect(remoteErrors, first.stderr).toHaveLength(1);
    expect(errorLines(first.logs)).toHaveLength(1);
    const localBefore = await readTree(scenario.path('out', 'local'));

    await sshd.startServer();
    const second = await scenario.run(['--stop-on-loop', '1']);
    expect(second.code, outputOf(second)).toBe(0);
    expect(await hashTree(remoteDir)).toEqual(expected);
    expect(await readTree(scenario.path('out', 'local'))).toEqual(localBefore);
    expect(await readTree(scenario.incoming)).toEqual({});
    expect(await findTemporaries(remoteDir, scenario.path('out'))).toEqual([]);
    expect(passSummary(second.logs, 'local')).toMatchObject({ done: 0 });
  });
});
