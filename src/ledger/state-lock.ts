import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SyncError, sleep, toSyncError } from '../errors/index.js';

export interface AcquireStateLockOptions {
  /** Folder of the lock file (`<command>.lock`); created when missing. */
  stateDir: string;
  /** Command that takes the lock, e.g. `fetch-files`; one lock per command and state_dir. */
  command: string;
}

/** Who holds a lock: what the lock file says. */
export interface StateLockHolder {
  pid: number;
  host: string;
  sinceMs: number;
  command: string;
  commandLine: string;
  /** Linux boot id of the holder's machine: a lock taken before a reboot is stale. */
  bootId?: string;
  /** Start time of the holder process (clock ticks after boot, from /proc): tells a reused pid apart. */
  processStartTicks?: number;
  /** Unique per acquisition, so a lock file is never mistaken for another one. */
  token: string;
}

/** A stale lock that was taken over; the caller logs it. */
export interface StaleLockTakeover {
  /** Absent when the stale lock file could not be read. */
  holder?: StateLockHolder;
  reason: string;
}

export interface StateLock {
  readonly lockPath: string;
  readonly holder: StateLockHolder;
  readonly tookOver?: StaleLockTakeover | undefined;
  /** Removes the lock file if it is still ours. Safe to call twice. */
  release(): Promise<void>;
}

/** Rounds of take-or-break before giving up; each round either wins, is refused, or saw the lock change hands. */
const MAX_ATTEMPTS = 20;
const COMMAND_LINE_MAX_CHARS = 500;

/**
 * Makes sure only one process per command works on one state_dir. The lock file is
 * created atomically (a fully written temp file hard-linked to the lock name: `link`
 * fails if the name exists, on local disks and on NFS), so a reader never sees a
 * half-written lock and exactly one racer wins.
 *
 * A lock is stale when its holder is on this host and is gone: the pid is not running,
 * the pid now belongs to a younger process, or the machine restarted since. A lock held
 * from another host is never judged by pid. A stale lock is removed only by the process
 * that holds `<lock>.break-<hash of its content>` and sees the same content again under
 * it, so two processes breaking the same stale lock cannot remove each other's new one;
 * the winner is still decided by `link` alone.
 */
export async function acquireStateLock(options: AcquireStateLockOptions): Promise<StateLock> {
  const { stateDir, command } = options;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(command)) {
    throw new SyncError('E_INTERNAL', `state lock command "${command}" is not a plain name`, {
      op: 'acquire state lock',
      path: stateDir,
      hint: 'this is a bug: pass a command name such as fetch-files',
    });
  }
  try {
    await mkdir(stateDir, { recursive: true });
  } catch (err) {
    throw toSyncError(err, { op: 'create state_dir', path: stateDir });
  }
  const lockPath = join(stateDir, `${command}.lock`);
  const me = describeThisProcess(command);
  const mine = serializeHolder(me);
  let tookOver: StaleLockTakeover | undefined;

  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    if (await createExclusive(lockPath, mine, me.token)) {
      // Re-check that the file under the name is ours before anyone relies on it.
      if ((await readLockFile(lockPath)) === mine) return new HeldStateLock(lockPath, me, mine, tookOver);
      continue;
    }
    const raw = await readLockFile(lockPath);
    if (raw === undefined) continue; // released between our attempt and the read
    const holder = parseHolder(raw);
    const reason = staleReason(holder);
    if (reason === undefined) throw lockedError(lockPath, stateDir, command, holder);
    // Reported if this process then wins, even when a racer removed the stale file first.
    tookOver = holder ? { holder, reason } : { reason };
    await breakStaleLock(lockPath, raw, me);
  }
  throw new SyncError(
    'E_LOCKED',
    `could not take the ${command} lock in ${stateDir}: it kept changing hands`,
    {
      op: 'acquire state lock',
      path: lockPath,
      hint: 'several processes are starting at once; run one at a time',
    },
  );
}

class HeldStateLock implements StateLock {
  private released = false;

  constructor(
    readonly lockPath: string,
    readonly holder: StateLockHolder,
    private readonly content: string,
    readonly tookOver: StaleLockTakeover | undefined,
  ) {}

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    // Only our own file: if someone judged ours stale and replaced it, theirs stays.
    if ((await readLockFile(this.lockPath)) === this.content) await unlinkIfPresent(this.lockPath);
  }
}

/** Creates `path` with `content`, fully written and fsynced, only if `path` does not exist. */
async function createExclusive(path: string, content: string, token: string): Promise<boolean> {
  const tmpPath = `${path}.${token}.tmp`;
  try {
    const handle = await open(tmpPath, 'wx', 0o644);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tmpPath, path);
      return true;
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return false;
      // Over NFS a link can succeed and still report an error (a lost reply): the link count tells.
      if ((await stat(tmpPath).catch(() => undefined))?.nlink === 2) return true;
      throw err;
    }
  } catch (err) {
    throw toSyncError(err, { op: 'create lock file', path });
  } finally {
    await unlink(tmpPath).catch(() => undefined);
  }
}

/**
 * Removes the stale lock whose content is `raw`, if it is still there. When another
 * process is breaking the same lock, waits a moment instead; the caller then tries again.
 */
async function breakStaleLock(lockPath: string, raw: string, me: StateLockHolder): Promise<void> {
  const breakPath = `${lockPath}.break-${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
  if (!(await createExclusive(breakPath, serializeHolder(me), `${me.token}-break`))) {
    // A breaker that died within its few-ms step leaves its file behind: remove it once its holder is gone.
    const breakRaw = await readLockFile(breakPath);
    if (breakRaw !== undefined && staleReason(parseHolder(breakRaw)) !== undefined) {
      if ((await readLockFile(breakPath)) === breakRaw) await unlinkIfPresent(breakPath);
    }
    await sleep(10 + Math.floor(Math.random() * 40));
    return;
  }
  try {
    // Holding the break file, nobody else can remove this content: compare-then-unlink is safe.
    if ((await readLockFile(lockPath)) === raw) await unlinkIfPresent(lockPath);
  } finally {
    await unlinkIfPresent(breakPath);
  }
}

/** Why the lock of `holder` may be taken over, or undefined if its holder may still be working. */
function staleReason(holder: StateLockHolder | undefined): string | undefined {
  if (holder === undefined) return 'the lock file is unreadable (left by a crashed run)';
  if (holder.host !== hostname()) return undefined;
  const bootId = readBootId();
  if (holder.bootId !== undefined && bootId !== undefined && holder.bootId !== bootId) {
    return `the machine restarted since process ${holder.pid} took it`;
  }
  if (!isProcessAlive(holder.pid)) return `process ${holder.pid} is no longer running`;
  if (holder.processStartTicks !== undefined) {
    const startTicks = readProcessStartTicks(holder.pid);
    if (startTicks !== undefined && startTicks !== holder.processStartTicks) {
      return `pid ${holder.pid} now belongs to another process`;
    }
  }
  return undefined;
}

function lockedError(
  lockPath: string,
  stateDir: string,
  command: string,
  holder: StateLockHolder | undefined,
): SyncError {
  if (holder === undefined) {
    return new SyncError('E_LOCKED', `${command} is locked in ${stateDir} by an unreadable lock file`, {
      op: 'acquire state lock',
      path: lockPath,
      hint: `if no ${command} runs with this state_dir, delete ${lockPath}`,
    });
  }
  const since = new Date(holder.sinceMs).toISOString();
  const otherHost = holder.host !== hostname();
  const hint = otherHost
    ? `it runs on another host: stop it there, or delete ${lockPath} if ${holder.host} is gone for good`
    : `wait for it to finish or stop it (kill ${holder.pid}); delete ${lockPath} only if that process is not a ${command}`;
  return new SyncError(
    'E_LOCKED',
    `${command} already runs with state_dir ${stateDir}: pid ${holder.pid} on ${holder.host} since ${since} (${holder.commandLine})`,
    {
      op: 'acquire state lock',
      path: lockPath,
      hint,
      holderPid: holder.pid,
      holderHost: holder.host,
      holderSinceMs: holder.sinceMs,
      holderCommandLine: holder.commandLine,
    },
  );
}

function describeThisProcess(command: string): StateLockHolder {
  const commandLine = process.argv.join(' ');
  const bootId = readBootId();
  const processStartTicks = readProcessStartTicks(process.pid);
  return {
    pid: process.pid,
    host: hostname(),
    sinceMs: Date.now(),
    command,
    commandLine:
      commandLine.length > COMMAND_LINE_MAX_CHARS
        ? `${commandLine.slice(0, COMMAND_LINE_MAX_CHARS)}…`
        : commandLine,
    ...(bootId === undefined ? {} : { bootId }),
    ...(processStartTicks === undefined ? {} : { processStartTicks }),
    token: randomBytes(12).toString('hex'),
  };
}

function serializeHolder(holder: StateLockHolder): string {
  return `${JSON.stringify(holder)}\n`;
}

function parseHolder(raw: string): StateLockHolder | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const holder = value as Partial<StateLockHolder>;
  const valid =
    Number.isInteger(holder.pid) &&
    (holder.pid ?? 0) > 0 &&
    typeof holder.host === 'string' &&
    typeof holder.sinceMs === 'number' &&
    typeof holder.command === 'string' &&
    typeof holder.commandLine === 'string' &&
    typeof holder.token === 'string' &&
    (holder.bootId === undefined || typeof holder.bootId === 'string') &&
    (holder.processStartTicks === undefined || typeof holder.processStartTicks === 'number');
  return valid ? (holder as StateLockHolder) : undefined;
}

async function readLockFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw toSyncError(err, { op: 'read lock file', path });
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw toSyncError(err, { op: 'remove lock file', path });
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return errnoOf(err) !== 'ESRCH';
  }
}

function readBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat; the name in field 2 may hold spaces and parentheses, so split after the last ')'. */
function readProcessStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
