/**
 * The fetcher (the real CLI) against the embedded SFTP server, with the faults a real
 * sshd cannot be made to produce: short reads, a stalled connection, a failing read, a
 * connection dropped mid-file, an unreadable file, slow reads cut by SIGTERM. After
 * each, the invariants of DESIGN.md hold: nothing half-written visible, nothing
 * deleted remotely without its local copy, every committed file correct.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EmbeddedSftpServer, startEmbeddedSftpServer } from '../../src/demo/embedded-sftp-server.js';
import { collect, jsonLines, runCli, spawnCli } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { generateEd25519KeyPair } from '../../src/demo/generate-key-pair.js';

const FILE_COUNT = 6;
const FILE_BYTES = 600 * 1024;

async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(
      relative(root, path),
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    );
  }
  return out;
}

describe('fetch-files against injected SFTP faults', () => {
  let temp: TempDir;
  let server: EmbeddedSftpServer;
  let work: string;
  let served: string;
  let originals: Map<string, string>;
  const clientKey = generateEd25519KeyPair();
  /** Told of each fault as it fires; a test sets it to clear the fault after the first one. */
  let faultListener: ((fault: string) => void) | undefined;

  beforeAll(async () => {
    temp = await makeTempDir('embedded-faults-');
    served = join(temp.path, 'served');
    await mkdir(join(served, 'outbound'), { recursive: true });
    await writeFile(join(temp.path, 'id_ed25519'), clientKey.private, { mode: 0o600 });
    server = await startEmbeddedSftpServer({
      rootDir: served,
      username: 'feeds',
      authorizedKey: clientKey.public,
      onFault: (event) => faultListener?.(event.fault),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
  });

  beforeEach(async () => {
    server.setFaults({});
    work = join(temp.path, `run-${Date.now()}`);
    await rm(join(served, 'outbound'), { recursive: true, force: true });
    await mkdir(join(served, 'outbound'), { recursive: true });
    const old = new Date(Date.now() - 3_600_000);
    for (let i = 0; i < FILE_COUNT; i += 1) {
      const path = join(served, 'outbound', `file-${i}.bin`);
      await writeFile(path, randomBytes(FILE_BYTES + i));
      await utimes(path, old, old);
    }
    originals = await hashTree(join(served, 'outbound'));
  });
  afterEach(() => {
    faultListener = undefined;
    server.setFaults({});
  });

  /** Clears every fault once the first one fires, so the retry runs clean; returns what fired. */
  function clearAfterFirstFault(): string[] {
    const fired: string[] = [];
    faultListener = (fault) => {
      fired.push(fault);
      server.setFaults({});
    };
    return fired;
  }

  async function writeConfig(extra = ''): Promise<string> {
    await mkdir(work, { recursive: true });
    const configPath = join(work, 'fetcher.yml');
    await writeFile(
      configPath,
      `concurrency_limit: 3
interval: 1s
shutdown_grace: 1s
incoming: incoming
archive: archive
state_dir: state
log_dir: log
sources:
  - name: partner
    host: ${server.host}
    port: ${server.port}
    username: feeds
    private_key: ${join(temp.path, 'id_ed25519')}
    host_key: "${server.hostKeyFingerprint}"
    remote_dir: /outbound
    connections: 2
    connect_timeout: 5s
    operation_timeout: 2s
    retries: 1
    after_fetch: delete
${extra}`,
    );
    return configPath;
  }

  /** Invariants after any run: no temporaries; every file in incoming is byte-identical to its original; no remote file gone without its local copy. */
  async function checkInvariants(): Promise<{ fetched: Map<string, string> }> {
    const fetched = await hashTree(join(work, 'incoming', 'partner'));
    for (const name of fetched.keys()) expect(name).not.toMatch(/\.part$/);
    for (const [name, sha256] of fetched) expect(sha256, name).toBe(originals.get(name));
    const remaining = await hashTree(join(served, 'outbound'));
    for (const name of originals.keys()) {
      if (!remaining.has(name))
        expect(fetched.has(name), `${name} deleted remotely without a local copy`).toBe(true);
    }
    const archived = await hashTree(join(work, 'archive', 'partner'));
    for (const [name, sha256] of fetched) expect(archived.get(name), `archive of ${name}`).toBe(sha256);
    return { fetched };
  }

  it('short reads (ssh2 #1166): every file still arrives whole', async () => {
    server.setFaults({ shortReads: 7_000 });
    const result = await runCli('fetch-files', ['--config', await writeConfig(), '--stop-on-loop', '1']);
    expect(result.code, result.stderr).toBe(0);
    expect(server.counters().shortReads).toBeGreaterThan(0);
    const { fetched } = await checkInvariants();
    expect(fetched.size).toBe(FILE_COUNT);
  });

  it('a stalled connection is given up within operation_timeout and the file is retried on a fresh one', async () => {
    server.setFaults({ stallAfterReads: 3 });
    // Only the first stall: the retry must then succeed on a new session.
    const fired = clearAfterFirstFault();
    const result = await runCli('fetch-files', ['--config', await writeConfig(), '--stop-on-loop', '1'], {
      timeoutMs: 60_000,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(fired).toContain('stallAfterReads');
    const retried = jsonLines(result.stderr).filter((line) =>
      String(line.msg).startsWith('fetch failed, retrying'),
    );
    // The stalled read times out and its session is destroyed; other files reading on that
    // session then fail with E_CONNECTION, logged in either order. All are retried.
    const retriedCodes = retried.map((line) => (line.err as { code?: string } | undefined)?.code);
    expect(retriedCodes).toContain('E_TIMEOUT');
    for (const code of retriedCodes) expect(['E_TIMEOUT', 'E_CONNECTION']).toContain(code);
    const { fetched } = await checkInvariants();
    expect(fetched.size).toBe(FILE_COUNT);
    // Bounded: one stall costs about operation_timeout, not minutes.
    expect(result.durationMs).toBeLessThan(30_000);
  });

  it('a failing read fails that file only; nothing half-written stays; the next pass fetches it', async () => {
    server.setFaults({ failReadNumber: 4 });
    const configPath = await writeConfig();
    const first = await runCli('fetch-files', ['--config', configPath, '--stop-on-loop', '1']);
    await checkInvariants();
    expect(first.code).toBe(1);
    const summary = jsonLines(first.stderr).find((line) => line.event === 'pass-summary');
    expect(Number(summary?.failed)).toBeGreaterThan(0);
    expect(Number(summary?.done) + Number(summary?.failed)).toBe(FILE_COUNT);
    const failures = jsonLines(first.stderr).filter((line) => String(line.msg).startsWith('cannot fetch'));
    expect(failures.length).toBe(Number(summary?.failed));
    for (const failure of failures)
      expect(String(failure.msg)).toMatch(/\/outbound\/file-\d\.bin.*on feeds@127\.0\.0\.1:\d+/);

    server.setFaults({});
    const second = await runCli('fetch-files', ['--config', configPath, '--stop-on-loop', '1']);
    expect(second.code, second.stderr).toBe(0);
    const { fetched } = await checkInvariants();
    expect(fetched.size).toBe(FILE_COUNT);
    expect(await readdir(join(served, 'outbound'))).toEqual([]);
  });

  it('a connection dropped mid-file is retried; the file arrives whole', async () => {
    server.setFaults({ dropAfterBytes: FILE_BYTES / 2 });
    const fired = clearAfterFirstFault();
    const result = await runCli('fetch-files', ['--config', await writeConfig(), '--stop-on-loop', '1']);
    // Replies already queued on the dropped connection may report the fault again; one connection was cut.
    expect(new Set(fired)).toEqual(new Set(['dropAfterBytes']));
    expect(server.counters().droppedConnections).toBeGreaterThanOrEqual(1);
    expect(result.code, result.stderr).toBe(0);
    const { fetched } = await checkInvariants();
    expect(fetched.size).toBe(FILE_COUNT);
  });

  it('a file the server refuses to open fails alone, with a line naming it; the others are fetched', async () => {
    server.setFaults({ failPaths: ['/outbound/file-2.bin'] });
    const result = await runCli('fetch-files', ['--config', await writeConfig(), '--stop-on-loop', '1']);
    expect(result.code).toBe(1);
    const errors = jsonLines(result.stderr).filter((line) => line.level === 50);
    expect(
      errors.some(
        (line) =>
          String(line.msg).includes('/outbound/file-2.bin') &&
          (line.err as { code?: string }).code === 'E_PERMISSION',
      ),
    ).toBe(true);
    const { fetched } = await checkInvariants();
    expect([...fetched.keys()].sort()).toEqual(
      [...originals.keys()].filter((name) => name !== 'file-2.bin').sort(),
    );
    expect(existsSync(join(served, 'outbound', 'file-2.bin'))).toBe(true);
  });

  it('SIGTERM during slow transfers: exits 130 after shutdown_grace, leaves no temporary, deletes nothing it lacks', async () => {
    server.setFaults({ readDelayMs: 400 });
    const child = spawnCli('fetch-files', ['--config', await writeConfig(), '--stop-on-loop', '1']);
    const done = collect(child, 30_000);
    // Wait until the first temporaries exist: transfers are in flight.
    const incomingDir = join(work, 'incoming', 'partner');
    for (let i = 0; i < 100; i += 1) {
      const names = await readdir(incomingDir).catch(() => [] as string[]);
      if (names.some((name) => name.endsWith('.part'))) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const signalledMs = Date.now();
    child.kill('SIGTERM');
    const result = await done;
    expect(result.code, result.stderr).toBe(130);
    // shutdown_grace is 1 s; aborting and cleaning must not take much longer.
    expect(Date.now() - signalledMs).toBeLessThan(8_000);
    await checkInvariants();
    const leftovers = (await readdir(incomingDir, { recursive: true })).filter((name) =>
      String(name).endsWith('.part'),
    );
    expect(leftovers).toEqual([]);
  });
});
