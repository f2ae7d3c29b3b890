import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import { acquireStateLock, type StateLockHolder } from '../../../src/ledger/index.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const LOCK_CHILD = fileURLToPath(new URL('../../support/state-lock-child.ts', import.meta.url));
const COMMAND = 'fetch-files';

interface ChildOutcome {
  result: 'acquired' | 'refused' | 'released';
  pid: number;
  code?: string;
  message?: string;
  tookOver?: { reason: string; holder?: StateLockHolder } | null;
}

/** A state-lock child: started once, then told to try (`go`) and to `release`, round after round. */
class LockChild {
  readonly process: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly lines: string[] = [];
  private readonly waiters: Array<() => void> = [];
  private stderr = '';

  constructor(stateDir: string, command = COMMAND) {
    this.process = spawn(process.execPath, ['--import', 'tsx', LOCK_CHILD, stateDir, command], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let buffered = '';
    this.process.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      this.lines.push(...parts);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.process.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.process.on('exit', () => {
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  async ready(): Promise<void> {
    await this.nextLine();
  }

  go(): void {
    this.process.stdin.write('go\n');
  }

  async outcome(): Promise<ChildOutcome> {
    return JSON.parse(await this.nextLine()) as ChildOutcome;
  }

  async release(): Promise<void> {
    this.process.stdin.write('release\n');
    expect(await this.outcome()).toMatchObject({ result: 'released' });
  }

  /** Releases the lock (if held) and waits for the child to exit. */
  async end(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.on('exit', resolve));
    this.process.stdin.end();
    await exited;
  }

  async kill(): Promise<void> {
    const exited = new Promise((resolve) => this.process.on('exit', resolve));
    this.process.kill('SIGKILL');
    await exited;
  }

  private async nextLine(): Promise<string> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.process.exitCode !== null || this.process.signalCode !== null) {
        throw new Error(`lock child ${this.process.pid} exited: ${this.stderr}`);
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/** The pid of a process that has just exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

function forgeLock(lockPath: string, holder: Partial<StateLockHolder>): void {
  const full: StateLockHolder = {
    pid: 1,
    host: hostname(),
    sinceMs: Date.parse('2024-05-01T10:00:00Z'),
    command: COMMAND,
    commandLine: 'node fetch-files --config etc/fetcher.yml',
    token: 'forged',
    ...holder,
  };
  writeFileSync(lockPath, `${JSON.stringify(full)}\n`);
}

describe('acquireStateLock', () => {
  let dir: TempDir;
  let stateDir: string;
  let lockPath: string;
  const children: LockChild[] = [];

  beforeEach(async () => {
    dir = await makeTempDir('state-lock-');
    stateDir = join(dir.path, 'state');
    lockPath = join(stateDir, `${COMMAND}.lock`);
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((child) => child.end()));
    await dir.remove();
  });

  function startChild(): LockChild {
    const child = new LockChild(stateDir);
    children.push(child);
    return child;
  }

  it('creates state_dir, writes who holds the lock, and removes it on release', async () => {
    const lock = await acquireStateLock({ stateDir, command: COMMAND });
    expect(lock.lockPath).toBe(lockPath);
    const written = JSON.parse(readFileSync(lockPath, 'utf8')) as StateLockHolder;
    expect(written).toMatchObject({ pid: process.pid, host: hostname(), command: COMMAND });
    expect(written.commandLine).toContain(process.argv[1]!);
    expect(Date.now() - written.sinceMs).toBeLessThan(10_000);
    expect(lock.tookOver).toBeUndefined();
    await lock.release();
    await lock.release();
    expect(existsSync(lockPath)).toBe(false);
    const again = await acquireStateLock({ stateDir, command: COMMAND });
    await again.release();
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it('refuses a second acquire in the same process, naming the holder and what to do', async () => {
    const lock = await acquireStateLock({ stateDir, command: COMMAND });
    try {
      const refused = await acquireStateLock({ stateDir, command: COMMAND }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(SyncError);
      const err = refused as SyncError;
      expect(err.code).toBe('E_LOCKED');
      expect(err.message).toContain(`pid ${process.pid}`);
      expect(err.message).toContain(hostname());
      expect(err.message).toContain(new Date(lock.holder.sinceMs).toISOString());
      expect(err.message).toContain(lock.holder.commandLine.slice(0, 40));
      expect(err.context).toMatchObject({ path: lockPath, holderPid: process.pid, holderHost: hostname() });
      expect(err.context.hint).toMatch(/wait for it to finish or stop it/);
      // Another command has a lock of its own.
      const other = await acquireStateLock({ stateDir, command: 'copy-files' });
      await other.release();
    } finally {
      await lock.release();
    }
  });

  it('refuses while another process holds it, and succeeds once it released', async () => {
    const child = startChild();
    await child.ready();
    child.go();
    expect(await child.outcome()).toMatchObject({ result: 'acquired' });
    await expect(acquireStateLock({ stateDir, command: COMMAND })).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringContaining(`pid ${child.process.pid} on ${hostname()}`),
    });
    await child.end();
    const lock = await acquireStateLock({ stateDir, command: COMMAND });
    expect(lock.tookOver).toBeUndefined();
    await lock.release();
  });

  it('refuses another process while this one holds it', async () => {
    const lock = await acquireStateLock({ stateDir, command: COMMAND });
    try {
      const child = startChild();
      await child.ready();
      child.go();
      const outcome = await child.outcome();
      expect(outcome).toMatchObject({ result: 'refused', code: 'E_LOCKED' });
      expect(outcome.message).toContain(`pid ${process.pid} on ${hostname()}`);
    } finally {
      await lock.release();
    }
  });

  it('takes over the lock of a process that was killed', async () => {
    const child = startChild();
    await child.ready();
    child.go();
    expect(await child.outcome()).toMatchObject({ result: 'acquired' });
    await child.kill();
    expect(existsSync(lockPath)).toBe(true);

    const lock = await acquireStateLock({ stateDir, command: COMMAND });
    expect(lock.tookOver?.reason).toBe(`process ${child.process.pid} is no longer running`);
    expect(lock.tookOver?.holder?.pid).toBe(child.process.pid);
    expect(JSON.parse(readFileSync(lockPath, 'utf8'))).toMatchObject({ pid: process.pid });
    await lock.release();
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it('judges a live pid stale when it now belongs to a younger process or the machine restarted', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      mkdirSync(stateDir, { recursive: true });
      if (existsSync(`/proc/${sleeper.pid}/stat`)) {
        forgeLock(lockPath, { pid: sleeper.pid!, processStartTicks: 1 });
        const reused = await acquireStateLock({ stateDir, command: COMMAND });
        expect(reused.tookOver?.reason).toBe(`pid ${sleeper.pid} now belongs to another process`);
        await reused.release();
      }
      if (existsSync('/proc/sys/kernel/random/boot_id')) {
        forgeLock(lockPath, { pid: sleeper.pid!, bootId: 'a-boot-before-the-last-restart' });
        const rebooted = await acquireStateLock({ stateDir, command: COMMAND });
        expect(rebooted.tookOver?.reason).toMatch(/machine restarted/);
        await rebooted.release();
      }
      // Without the start time or boot id, a live pid is a live holder.
      forgeLock(lockPath, { pid: sleeper.pid! });
      await expect(acquireStateLock({ stateDir, command: COMMAND })).rejects.toMatchObject({
        code: 'E_LOCKED',
      });
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('never judges a lock held from another host by its pid', async () => {
    mkdirSync(stateDir, { recursive: true });
    forgeLock(lockPath, { pid: await deadPid(), host: 'batch-02.example.org', bootId: 'another-machine' });
    const err = (await acquireStateLock({ stateDir, command: COMMAND }).catch(
      (e: unknown) => e,
    )) as SyncError;
    expect(err).toBeInstanceOf(SyncError);
    expect(err.code).toBe('E_LOCKED');
    expect(err.message).toContain('on batch-02.example.org since 2024-05-01T10:00:00.000Z');
    expect(err.message).toContain('node fetch-files --config etc/fetcher.yml');
    expect(err.context.hint).toContain('another host');
    expect(err.context.hint).toContain(lockPath);
  });

  it('takes over an unreadable lock file left by a crashed run', async () => {
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(lockPath, '');
    const lock = await acquireStateLock({ stateDir, command: COMMAND });
    expect(lock.tookOver).toEqual({ reason: 'the lock file is unreadable (left by a crashed run)' });
    await lock.release();
  });

  it('lets exactly one of several processes racing for a free lock win, round after round', async () => {
    const racers = Array.from({ length: 6 }, () => startChild());
    await Promise.all(racers.map((racer) => racer.ready()));
    for (let round = 0; round < 5; round += 1) {
      for (const racer of racers) racer.go();
      const outcomes = await Promise.all(racers.map((racer) => racer.outcome()));
      const winners = outcomes.filter((o) => o.result === 'acquired');
      expect(winners).toHaveLength(1);
      for (const loser of outcomes.filter((o) => o.result !== 'acquired')) {
        expect(loser).toMatchObject({ result: 'refused', code: 'E_LOCKED' });
        expect(loser.message).toContain(`pid ${winners[0]!.pid}`);
      }
      await Promise.all(racers.map((racer) => racer.release()));
    }
  });

  it('lets exactly one of several processes racing to take over a stale lock win, round after round', async () => {
    mkdirSync(stateDir, { recursive: true });
    const racers = Array.from({ length: 6 }, () => startChild());
    await Promise.all(racers.map((racer) => racer.ready()));
    for (let round = 0; round < 20; round += 1) {
      const stalePid = await deadPid();
      forgeLock(lockPath, { pid: stalePid, token: `stale-${round}` });
      for (const racer of racers) racer.go();
      const outcomes = await Promise.all(racers.map((racer) => racer.outcome()));
      const winners = outcomes.filter((o) => o.result === 'acquired');
      expect(winners).toHaveLength(1);
      // A racer that arrives after another removed the stale file wins without having seen it.
      if (winners[0]!.tookOver !== null) {
        expect(winners[0]!.tookOver).toEqual({
          reason: `process ${stalePid} is no longer running`,
          holder: expect.objectContaining({ pid: stalePid }),
        });
      }
      for (const loser of outcomes.filter((o) => o.result !== 'acquired')) {
        expect(loser).toMatchObject({ result: 'refused', code: 'E_LOCKED' });
        expect(loser.message).toContain(`pid ${winners[0]!.pid}`);
      }
      expect(JSON.parse(readFileSync(lockPath, 'utf8'))).toMatchObject({ pid: winners[0]!.pid });
      await Promise.all(racers.map((racer) => racer.release()));
    }
    // No temp or break files left behind.
    expect(readdirSync(stateDir)).toEqual([]);
  });
});
