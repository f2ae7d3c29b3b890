/**
 * The copier as a long-running process: watch mode picks a new file up at once, the
 * state_dir lock keeps a second copier out, SIGTERM mid-copy ends with 130 and leaves
 * nothing half-written, and a bad config is exit 2.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  outputOf,
  findTemporaries,
  hashTree,
  seededBytes,
  sftpDestination,
  sha256Of,
  writeFileWithMtime,
} from '../../support/copier-scenario.js';
import { type CliResult, collect, jsonLines } from '../../support/run-cli.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';

/** A running child whose JSON log lines can be waited for. */
interface Watched {
  child: ChildProcess;
  done: Promise<CliResult>;
  waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<void>;
}

function watchChild(child: ChildProcess, timeoutMs = 60_000): Watched {
  let stderr = '';
  const waiters: { predicate: (line: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    const lines = jsonLines(stderr.slice(0, stderr.lastIndexOf('\n') + 1));
    for (const waiter of [...waiters]) {
      if (lines.some(waiter.predicate)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  });
  const done = collect(child, timeoutMs);
  return {
    child,
    done,
    waitFor(predicate, waitMs = 20_000) {
      return new Promise((resolve, reject) => {
        if (jsonLines(stderr.slice(0, stderr.lastIndexOf('\n') + 1)).some(predicate)) return resolve();
        const timer = setTimeout(
          () => reject(new Error(`no such log line within ${waitMs} ms:\n${stderr}`)),
          waitMs,
        );
        waiters.push({
          predicate,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

const passEnded =
  (passNumber: number) =>
  (line: Record<string, unknown>): boolean =>
    line.event === 'pass-summary' && line.name === '(incoming)' && line.passNumber === passNumber;

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const startedMs = Date.now();
  while (!(await check())) {
    if (Date.now() - startedMs > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - startedMs;
}

describe('copy-files as a long-running process', () => {
  let scenario: CopierScenario;
  const out = (...parts: string[]): string => scenario.path('out', ...parts);

  beforeEach(async () => {
    scenario = await CopierScenario.create('copier-loop-');
  });
  afterEach(async () => {
    await scenario?.remove();
  });

  it('watch: true copies a new file within about a second despite a long interval; the lock keeps a second copier out', async () => {
    await scenario.addFile('first.csv', 'first\n');
    await scenario.writeConfig({
      watch: true,
      interval: '10m',
      destinations: [{ name: 'dst', path: out('dst') }],
    });
    const copier = watchChild(scenario.spawn());
    try {
      await copier.waitFor(passEnded(1));
      expect(Object.keys(await hashTree(out('dst')))).toEqual(['first.csv']);

      // A second copier on the same state_dir is refused: exit 2, one line naming the holder.
      const second = await scenario.run(['--stop-on-loop', '1']);
      expect(second.code, outputOf(second)).toBe(2);
      expect(second.stderr).toContain('E_LOCKED');
      expect(second.stderr).toContain(`pid ${copier.child.pid}`);

      // A producer renames a finished file in, as the fetcher does, in a folder that did not exist.
      const staged = join(scenario.incoming, '.arriving.part');
      await writeFileWithMtime(staged, 'arrived while watching\n', Date.now() - 60_000);
      await mkdir(join(scenario.incoming, 'late'));
      await rename(staged, join(scenario.incoming, 'late', 'arrived.csv'));
      const tookMs = await waitUntil(
        async () => (await hashTree(out('dst')))['late/arrived.csv'] === sha256Of('arrived while watching\n'),
        5_000,
        'the new file reaching the destination',
      );
      expect(tookMs).toBeLessThan(1_500);
    } finally {
      copier.child.kill('SIGTERM');
    }
    const result = await copier.done;
    expect(result.code, outputOf(result)).toBe(130);
    expect(await hashTree(scenario.incoming)).toEqual({});
  });

  it('a bad config is exit 2 with every problem on stderr, and nothing is copied', async () => {
    await scenario.addFile('a.csv', 'a\n');
    await scenario.writeConfig({
      destinations: [{ name: 'dst', path: out('dst'), on_conflict: 'clobber', inclde: ['*.csv'] }],
    });
    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('on_conflict');
    expect(result.stderr).toContain('inclde');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await readdir(scenario.root)).not.toContain('out');
  });
});

describe('copy-files interrupted mid-copy', () => {
  let sshd: SshdFixture;
  let scenario: CopierScenario;

  beforeAll(async () => {
    sshd = await startSshd();
    scenario = await CopierScenario.create('copier-sigterm-');
  });
  afterAll(async () => {
    await scenario?.remove();
    await sshd?.stop();
  });

  it('SIGTERM while copies are in flight exits 130; the next pass leaves no temporaries and delivers everything', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 8; i += 1) {
      const content = seededBytes(100 + i, 6 * 1024 * 1024);
      await scenario.addFile(`big-${i}.bin`, content);
      files[`big-${i}.bin`] = sha256Of(content);
    }
    const remoteDir = join(sshd.rootDir, 'sigterm');
    await scenario.writeConfig({
      concurrency_limit: 4,
      shutdown_grace: '0ms',
      destinations: [
        { name: 'local', path: scenario.path('out', 'local'), verify: 'sha256' },
        sftpDestination(sshd, 'remote', remoteDir),
      ],
    });
    const copier = watchChild(scenario.spawn(['--stop-on-loop', '1']));
    // Mid-copy: a temporary is being written at the SFTP destination.
    await waitUntil(
      async () => (await findTemporaries(remoteDir)).length > 0,
      20_000,
      'a temporary at the destination',
    );
    copier.child.kill('SIGTERM');
    const interrupted = await copier.done;
    expect(interrupted.code, outputOf(interrupted)).toBe(130);
    const logs = jsonLines(interrupted.stderr);
    expect(logs.some((line) => line.signal === 'SIGTERM')).toBe(true);
    // Interrupted copies are not failures of the destination.
    expect(logs.filter((line) => line.level === 50)).toEqual([]);
    // Nothing half-written under a real name: every file there is complete.
    for (const [relPath, sha256] of Object.entries(await hashTree(remoteDir))) {
      expect(sha256, relPath).toBe(files[relPath]);
    }
    expect(Object.keys(await hashTree(scenario.incoming)).length).toBeGreaterThan(0);
    // Stopped copies remove their own temporaries (the server is up, so they can).
    expect(await findTemporaries(remoteDir, scenario.path('out'))).toEqual([]);

    const next = await scenario.run(['--stop-on-loop', '1']);
    expect(next.code, outputOf(next)).toBe(0);
    expect(await findTemporaries(remoteDir, scenario.path('out'), scenario.incoming)).toEqual([]);
    expect(await hashTree(remoteDir)).toEqual(files);
    expect(await hashTree(scenario.path('out', 'local'))).toEqual(files);
    expect(await hashTree(scenario.incoming)).toEqual({});
  });
});
