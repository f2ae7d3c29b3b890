/**
 * The local side failing under the pipeline: incoming below its free-space reserve,
 * a destination removed or replaced by a file while the copier delivers to it, and
 * the permission bits of everything the fetcher, the copier and the mirror create.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { renameSync, watch, writeFileSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopierScenario, passSummary } from '../support/copier-scenario.js';
import {
  fetchedRemotePaths,
  hashTree,
  makeRemoteTree,
  summaryOf,
  withLogs,
} from '../support/fetcher-scenario.js';
import { type CliCommand, type CliResult, cliPath, collect } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { type FaultsServer, startFaultsServer } from './faults-kit.js';
import { checkInvariants } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

describe('faults: local disks and folders', () => {
  let server: FaultsServer;
  let temp: TempDir;

  beforeAll(async () => {
    server = await startFaultsServer();
    temp = await makeTempDir('faults-local-');
  });
  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
  });

  it(scenarioTitle('disk-reserve'), async () => {
    const remoteDir = join(server.sshd.rootDir, 'reserve');
    await makeRemoteTree(remoteDir, { 'a.csv': randomBytes(10_000), 'b.csv': randomBytes(20_000) });
    const originals = await hashTree(remoteDir);
    const dir = join(temp.path, 'reserve');
    await mkdir(dir, { recursive: true });
    const info = await statfs(dir);
    const freeBytes = info.bavail * info.bsize;
    const reserveBytes = freeBytes + 1024 ** 3;
    const write = (minFreeSpace: number) =>
      server.writeConfig({
        dir,
        keys: { min_free_space: minFreeSpace },
        sources: [{ name: 'full', remoteDir, keys: { after_fetch: 'delete' } }],
      });
    const scenario = await write(reserveBytes);
    const spec = (results: readonly CliResult[], context: string, presence: 'none' | 'all') => ({
      context,
      originals,
      remoteDir,
      incoming: { dir: join(scenario.incoming, 'full'), expect: presence },
      archive: { dir: join(scenario.archive ?? '', 'full'), expect: presence },
      secrets: server.secrets,
      logDirs: [scenario.logDir],
      outputs: results.flatMap((result) => [result.stdout, result.stderr]),
    });

    const first = await server.fetch(scenario);
    expect(first.code, first.stderr).toBe(1);
    expect(fetchedRemotePaths(first)).toEqual([]);
    const summary = summaryOf(first, 'full');
    expect(summary).toMatchObject({ result: 'failed', done: 0, waiting: 2 });
    expect(summary.error).toMatch(
      new RegExp(
        `^E_DISK_FULL: 2 files wait: not enough free space in ${scenario.incoming} — free space there`,
      ),
    );
    expect(summary.error).toContain('min_free_space');
    // Not even started: no temporary was ever made, nothing was deleted.
    expect(first.logs.some((line) => String(line.msg).startsWith('removed'))).toBe(false);
    await checkInvariants(spec([first], 'below the reserve', 'none'));
    expect((await hashTree(remoteDir)).size).toBe(2);

    await write(0);
    const second = await server.fetch(scenario);
    expect(second.code, second.stderr).toBe(0);
    await checkInvariants(spec([first, second], 'reserve lowered', 'all'));
    expect((await hashTree(remoteDir)).size).toBe(0);
  });

  /** A copier over `fileCount` files delivering to a stable destination and to one the test attacks. */
  async function copierWithVictim(label: string, fileCount: number) {
    const copier = await CopierScenario.create(`faults-${label}-`);
    for (let index = 0; index < fileCount; index += 1)
      await copier.addFile(`f${String(index).padStart(3, '0')}.csv`, randomBytes(2_000 + index));
    const originals = await hashTree(copier.incoming);
    const stable = copier.path('out', 'stable');
    const victim = copier.path('out', 'victim');
    await mkdir(victim, { recursive: true });
    await copier.writeConfig({
      concurrency_limit: 1,
      destinations: [
        { name: 'stable', path: stable },
        { name: 'victim', path: victim },
      ],
    });
    return { copier, originals, stable, victim };
  }

  /**
   * Runs `attack` synchronously inside the inotify callback once `count` files have
   * landed in `dir`, so the copier is still mid-pass; rejects when `child` ends first.
   */
  function afterDeliveries(
    dir: string,
    count: number,
    child: ChildProcess,
    attack: () => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let landed = 0;
      const watcher = watch(dir, (event, name) => {
        const fileName = name?.toString() ?? '';
        if (event !== 'rename' || fileName.startsWith('.')) return;
        landed += 1;
        if (landed < count) return;
        watcher.close();
        try {
          attack();
          resolve();
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      child.once('exit', () => {
        watcher.close();
        reject(new Error(`the copier ended before ${count} files landed in ${dir}`));
      });
    });
  }

  it(scenarioTitle('destination-vanishes'), async () => {
    const { copier, originals, stable, victim } = await copierWithVictim('vanish', 150);
    try {
      const child = copier.spawn(['--stop-on-loop', '1']);
      const done = collect(child, 60_000);
      // Moved away in one step, then deleted: the copier keeps writing while a recursive rm walks.
      const attacked = afterDeliveries(victim, 20, child, () => renameSync(victim, `${victim}.removed`));
      await attacked;
      const first = withLogs(await done);
      await rm(`${victim}.removed`, { recursive: true, force: true });
      expect([0, 1], first.stderr).toContain(first.code);
      const spec = (results: readonly CliResult[], context: string) => ({
        context,
        originals,
        incoming: { dir: copier.incoming, expect: 'some' as const },
        destinations: [
          { dir: stable, expect: 'some' as const },
          // What the rm took is gone: only what the copier wrote after it must be whole.
          { dir: victim, expect: 'some' as const, holdsReleased: false },
        ],
        copierRan: true,
        logDirs: [copier.logDir],
        outputs: results.flatMap((result) => [result.stdout, result.stderr]),
      });
      await checkInvariants(spec([first], 'after the rm -rf'));
      // Whatever waits in incoming is delivered by the next run.
      const waiting = [...(await hashTree(copier.incoming)).keys()];
      const second = await copier.run(['--stop-on-loop', '1']);
      expect(second.code, second.stderr).toBe(0);
      await checkInvariants({
        ...spec([first, second], 'next run'),
        incoming: { dir: copier.incoming, expect: 'none' },
        destinations: [
          { dir: stable, expect: 'all' },
          { dir: victim, expect: 'some', holdsReleased: false },
        ],
      });
      const victimFiles = await hashTree(victim);
      for (const relPath of waiting) expect(victimFiles.get(relPath), relPath).toBe(originals.get(relPath));
      // The folder was made again and the files after the removal went into it.
      expect(victimFiles.size).toBeGreaterThan(0);
    } finally {
      await copier.remove();
    }
  });

  it(scenarioTitle('destination-replaced-by-file'), async () => {
    const { copier, originals, stable, victim } = await copierWithVictim('replaced', 150);
    try {
      const child = copier.spawn(['--stop-on-loop', '1']);
      const done = collect(child, 60_000);
      const attacked = afterDeliveries(victim, 20, child, () => {
        // Stopped meanwhile: the copier must meet the file, not the instant with neither
        // (that instant is the destination-vanishes scenario).
        child.kill('SIGSTOP');
        try {
          renameSync(victim, `${victim}.removed`);
          writeFileSync(victim, 'not a folder');
        } finally {
          child.kill('SIGCONT');
        }
      });
      await attacked;
      const first = withLogs(await done);
      await rm(`${victim}.removed`, { recursive: true, force: true });
      expect(first.code, first.stderr).toBe(1);
      const summary = passSummary(first.logs, 'victim');
      expect(summary).toMatchObject({ result: 'failed' });
      expect(passSummary(first.logs, 'stable')).toMatchObject({ result: 'ok' });
      const errors = first.logs.filter(
        (line) => typeof line.level === 'number' && line.level >= 50 && String(line.msg).includes(victim),
      );
      // Told once, as the destination's failure, not once per file.
      expect(errors, first.stderr).toEqual([
        expect.objectContaining({
          msg: expect.stringMatching(/^destination victim failed, its files wait in incoming: .* — \S/),
        }),
      ]);
      const waiting = [...(await hashTree(copier.incoming)).keys()];
      expect(waiting.length, 'files wait in incoming for the broken destination').toBeGreaterThan(0);
      const spec = (results: readonly CliResult[], context: string) => ({
        context,
        originals,
        incoming: { dir: copier.incoming, expect: 'some' as const },
        destinations: [
          { dir: stable, expect: 'all' as const },
          { dir: victim, expect: 'some' as const, holdsReleased: false },
        ],
        copierRan: true,
        logDirs: [copier.logDir],
        outputs: results.flatMap((result) => [result.stdout, result.stderr]),
      });
      // The file in the folder's place is the test's own; the copier's side is checked.
      await checkInvariants({
        ...spec([first], 'after the swap'),
        destinations: [{ dir: stable, expect: 'all' }],
      });

      await rm(victim, { force: true });
      const second = await copier.run(['--stop-on-loop', '1']);
      expect(second.code, second.stderr).toBe(0);
      await checkInvariants({
        ...spec([first, second], 'folder back'),
        incoming: { dir: copier.incoming, expect: 'none' },
      });
      const victimFiles = await hashTree(victim);
      for (const relPath of waiting) expect(victimFiles.get(relPath), relPath).toBe(originals.get(relPath));
    } finally {
      await copier.remove();
    }
  });

  /** fetch → copy → mirror, every command under `umask`, with `modes` as top-level keys of each config. */
  async function pipelineUnderUmask(label: string, umask: string, modes: Record<string, string>) {
    const dir = join(temp.path, label);
    const remoteDir = join(server.sshd.rootDir, label);
    await makeRemoteTree(remoteDir, {
      'wide.csv': 'mode 0777 on the server',
      'sub/deeper/b.csv': 'b',
      'c.csv': 'c',
    });
    await chmod(join(remoteDir, 'wide.csv'), 0o777);
    const scenario = await server.writeConfig({
      dir,
      keys: modes,
      sources: [{ name: 'modes', remoteDir, keys: { recursive: true } }],
    });
    const destination = join(dir, 'out', 'deep', 'dest');
    const copierConfig = join(dir, 'copier.yml');
    await writeFile(
      copierConfig,
      dump({
        incoming: scenario.incoming,
        state_dir: join(dir, 'copier-state'),
        log_dir: join(dir, 'copier-log'),
        ...modes,
        destinations: [{ name: 'dest', path: destination }],
      }),
    );
    const replica = join(dir, 'replica', 'deep');
    const mirrorConfig = join(dir, 'mirror.yml');
    await writeFile(
      mirrorConfig,
      dump({
        state_dir: join(dir, 'mirror-state'),
        log_dir: join(dir, 'mirror-log'),
        ...modes,
        jobs: [{ name: 'rep', source: scenario.archive, replica }],
      }),
    );
    const results: CliResult[] = [];
    for (const [command, config] of [
      ['fetch-files', scenario.configPath],
      ['copy-files', copierConfig],
      ['mirror-files', mirrorConfig],
    ] as const) {
      const result = await collect(
        spawnUnderUmask(umask, command, ['--config', config, '--stop-on-loop', '1'], server.env),
        60_000,
      );
      expect(result.code, `${command}\n${result.stderr}`).toBe(0);
      results.push(result);
    }
    const created = [scenario.incoming, scenario.archive ?? '', join(dir, 'out'), join(dir, 'replica')];
    const modesFound = new Map<string, { type: 'file' | 'dir'; mode: number }>();
    for (const root of created) {
      modesFound.set(root, { type: 'dir', mode: (await lstat(root)).mode & 0o7777 });
      for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
        const path = join(entry.parentPath, entry.name);
        if (entry.isFile() || entry.isDirectory())
          modesFound.set(path, {
            type: entry.isFile() ? 'file' : 'dir',
            mode: (await lstat(path)).mode & 0o7777,
          });
      }
    }
    const files = [...modesFound].filter(([, found]) => found.type === 'file');
    // incoming was emptied by the copier: the files are in archive, destination and replica.
    expect(files.length).toBe(9);
    await checkInvariants({
      context: label,
      originals: await hashTree(remoteDir),
      archive: { dir: join(scenario.archive ?? '', 'modes'), expect: 'all' },
      destinations: [
        { dir: join(destination, 'modes'), expect: 'all' },
        { dir: join(replica, 'modes'), expect: 'all' },
      ],
      secrets: server.secrets,
      logDirs: [scenario.logDir],
      outputs: results.flatMap((result) => [result.stdout, result.stderr]),
    });
    return modesFound;
  }

  function describeModes(found: Map<string, { type: string; mode: number }>): string {
    return [...found].map(([path, { type, mode }]) => `${mode.toString(8)} ${type} ${path}`).join('\n');
  }

  it(scenarioTitle('modes-configured'), async () => {
    const found = await pipelineUnderUmask('modes-set', '077', { file_mode: '0640', dir_mode: '0750' });
    const wrong = [...found].filter(([, { type, mode }]) => mode !== (type === 'file' ? 0o640 : 0o750));
    expect(wrong, describeModes(new Map(wrong))).toEqual([]);
  });

  it(scenarioTitle('modes-umask'), async () => {
    const found = await pipelineUnderUmask('modes-umask', '027', {});
    const wider = [...found].filter(
      ([, { type, mode }]) => (mode & ~(type === 'file' ? 0o640 : 0o750)) !== 0,
    );
    expect(wider, describeModes(new Map(wider))).toEqual([]);
    const wide = [...found].filter(([path]) => path.endsWith('wide.csv'));
    expect(wide.length).toBe(3);
    for (const [path, { mode }] of wide) expect(mode, path).not.toBe(0o777);
  });
});

/** The CLI started through `sh -c 'umask …; exec node …'`. */
function spawnUnderUmask(
  umask: string,
  command: CliCommand,
  args: readonly string[],
  env: Record<string, string>,
): ChildProcess {
  return spawn(
    '/bin/sh',
    ['-c', `umask ${umask}; exec "$0" "$@"`, process.execPath, cliPath(command), ...args],
    {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}
