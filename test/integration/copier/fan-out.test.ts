/**
 * The scenario, end to end with the real CLI: three local destinations with
 * different filters (one that cannot be written even by root) and one SFTP
 * destination on a real sshd. Pass 1 delivers what it can and keeps the rest in
 * incoming; pass 2, after the fix, delivers the rest and copies nothing twice.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  outputOf,
  errorLines,
  findTemporaries,
  passSummary,
  readTree,
  seededBytes,
  sftpDestination,
  sha256Of,
} from '../../support/copier-scenario.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';

const FILES: Record<string, Buffer> = {
  'orders/o-1.csv': Buffer.from('id;qty\n1;2\n'),
  'orders/2026/o-2.csv': Buffer.from('id;qty\n2;5\n'),
  'invoices/i-1.pdf': seededBytes(1, 70_000),
  'invoices/i-2.pdf': seededBytes(2, 1_300_000),
  'readme.txt': Buffer.from('read me\n'),
  'bundles/b-1.zip': seededBytes(3, 300_000),
  'notes.md': Buffer.from('for the partner only\n'),
};
const MTIMES: Record<string, number> = Object.fromEntries(
  Object.keys(FILES).map((relPath, index) => [relPath, Date.UTC(2026, 0, 2, 3, 4, index)]),
);

const WANTED: Record<string, (relPath: string) => boolean> = {
  warehouse: (relPath) => relPath.endsWith('.csv'),
  billing: (relPath) => relPath.startsWith('invoices/'),
  broken: (relPath) => relPath.endsWith('.csv') || relPath.endsWith('.txt'),
  partner: (relPath) => relPath.endsWith('.zip') || relPath.endsWith('.csv') || relPath.endsWith('.md'),
};

function expectedTree(destination: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(FILES)
      .filter(([relPath]) => WANTED[destination]?.(relPath))
      .map(([relPath, content]) => [relPath, sha256Of(content)]),
  );
}

function hashes(tree: Awaited<ReturnType<typeof readTree>>): Record<string, string> {
  return Object.fromEntries(Object.entries(tree).map(([relPath, file]) => [relPath, file.sha256]));
}

describe('copy-files: three local destinations and one SFTP destination, one failing', () => {
  let sshd: SshdFixture;
  let scenario: CopierScenario;
  let out: (name: string) => string;
  let remoteDir: string;

  beforeAll(async () => {
    sshd = await startSshd();
    scenario = await CopierScenario.create('copier-fanout-');
    out = (name) => scenario.path('out', name);
    remoteDir = join(sshd.rootDir, 'partner-inbound');
    // A regular file where the broken destination's parent folder should be: not even root can create it.
    await mkdir(scenario.path('out'), { recursive: true });
    await writeFile(scenario.path('out', 'blocker'), 'I am a file, not a folder\n');
    for (const [relPath, content] of Object.entries(FILES))
      await scenario.addFile(relPath, content, MTIMES[relPath]);
    await scenario.writeConfig({
      concurrency_limit: 4,
      destinations: [
        { name: 'warehouse', path: out('warehouse'), include: ['*.csv'] },
        { name: 'billing', path: out('billing'), include: ['invoices/**'] },
        { name: 'broken', path: join(out('blocker'), 'broken'), include: ['*.csv', '*.txt'] },
        sftpDestination(sshd, 'partner', remoteDir, { include: ['*.zip', '*.csv', '*.md'] }),
      ],
    });
  });
  afterAll(async () => {
    await scenario?.remove();
    await sshd?.stop();
  });

  it('pass 1 delivers to the good destinations, keeps what the broken one lacks, exits 1; pass 2 finishes without copying twice', async () => {
    const first = await scenario.run(['--stop-on-loop', '1']);
    expect(first.code, outputOf(first)).toBe(1);

    // Good destinations hold exactly what their filters say.
    expect(hashes(await readTree(out('warehouse')))).toEqual(expectedTree('warehouse'));
    expect(hashes(await readTree(out('billing')))).toEqual(expectedTree('billing'));
    expect(hashes(await readTree(remoteDir))).toEqual(expectedTree('partner'));

    // Incoming keeps exactly what the broken destination lacks.
    expect(Object.keys(await readTree(scenario.incoming)).sort()).toEqual(
      Object.keys(expectedTree('broken')).sort(),
    );

    // One error line for the broken destination, naming it and the path; no other errors.
    const errors = errorLines(first.logs);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ destination: 'broken' });
    expect(String(errors[0]?.msg)).toContain(join(out('blocker'), 'broken'));
    expect(passSummary(first.logs, 'broken')).toMatchObject({ result: 'failed', done: 0, waiting: 3 });
    expect(passSummary(first.logs, 'warehouse')).toMatchObject({ result: 'ok', done: 2 });
    expect(passSummary(first.logs, 'partner')).toMatchObject({ result: 'ok', done: 4 });

    const before = {
      warehouse: await readTree(out('warehouse')),
      partner: await readTree(remoteDir),
    };

    // The fix: the blocker becomes a folder.
    await rm(scenario.path('out', 'blocker'));
    await mkdir(scenario.path('out', 'blocker'));
    const second = await scenario.run(['--stop-on-loop', '1']);
    expect(second.code, outputOf(second)).toBe(0);
    expect(errorLines(second.logs)).toEqual([]);

    expect(hashes(await readTree(join(out('blocker'), 'broken')))).toEqual(expectedTree('broken'));
    expect(await readTree(scenario.incoming)).toEqual({});
    // Already delivered files were not copied again: same inode, same mtime (ctime too: not touched at all).
    const after = {
      warehouse: await readTree(out('warehouse')),
      partner: await readTree(remoteDir),
    };
    expect(after).toEqual(before);
    for (const relPath of Object.keys(expectedTree('partner'))) {
      const remote = await stat(join(remoteDir, relPath));
      expect(remote.mtimeMs, relPath).toBe(before.partner[relPath]?.mtimeMs);
    }
    expect(passSummary(second.logs, 'warehouse')).toMatchObject({ done: 0, alreadyDone: 2 });
    expect(passSummary(second.logs, 'partner')).toMatchObject({ done: 0, alreadyDone: 2 });
    expect(passSummary(second.logs, 'broken')).toMatchObject({ result: 'ok', done: 3 });
    const delivered = second.logs.filter((line) => typeof line.dstPath === 'string' && line.outcome);
    expect(delivered.map((line) => line.destination)).toEqual(['broken', 'broken', 'broken']);

    // Copies keep the source's mtime, and no temporaries were left anywhere.
    for (const tree of [after.warehouse, after.partner, await readTree(out('billing'))]) {
      for (const [relPath, file] of Object.entries(tree)) expect(file.mtimeMs, relPath).toBe(MTIMES[relPath]);
    }
    expect(await findTemporaries(scenario.path('out'), remoteDir, scenario.incoming)).toEqual([]);
  });
});
