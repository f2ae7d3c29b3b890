/**
 * What happens to files in incoming: moved to done_dir after delivery, unmatched
 * files kept (told once per process) or moved, young files left for in-place
 * producers (min_age), and --dry-run, which only prints the plan.
 */
import { readdir, stat, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  hashTree,
  outputOf,
  passSummary,
  readTree,
  sha256Of,
} from '../../support/copier-scenario.js';

describe('copy-files and the files in incoming', () => {
  let scenario: CopierScenario;
  const out = (...parts: string[]): string => scenario.path('out', ...parts);

  beforeEach(async () => {
    scenario = await CopierScenario.create('copier-incoming-');
  });
  afterEach(async () => {
    await scenario?.remove();
  });

  it('done_dir: a delivered file is moved there, path kept, instead of removed', async () => {
    await scenario.addFile('orders/a.csv', 'a\n');
    await scenario.addFile('b.csv', 'b\n');
    await scenario.writeConfig({
      done_dir: scenario.path('done'),
      destinations: [{ name: 'dst', path: out('dst') }],
    });
    const before = await readTree(scenario.incoming);
    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code, outputOf(result)).toBe(0);
    expect(await readTree(scenario.incoming)).toEqual({});
    const done = await readTree(scenario.path('done'));
    expect(Object.keys(done).sort()).toEqual(['b.csv', 'orders/a.csv']);
    // Moved, not copied: same inode and mtime as in incoming.
    for (const [relPath, file] of Object.entries(done)) {
      expect({ ino: file.ino, mtimeMs: file.mtimeMs }).toEqual({
        ino: before[relPath]?.ino,
        mtimeMs: before[relPath]?.mtimeMs,
      });
    }
    expect(await hashTree(out('dst'))).toEqual({ 'b.csv': sha256Of('b\n'), 'orders/a.csv': sha256Of('a\n') });
  });

  it('unmatched: keep leaves the file and warns once per process, not once per pass', async () => {
    await scenario.addFile('nobody-wants.bin', 'orphan\n');
    await scenario.addFile('wanted.csv', 'wanted\n');
    await scenario.writeConfig({
      interval: '50ms',
      destinations: [{ name: 'dst', path: out('dst'), include: ['*.csv'] }],
    });
    const result = await scenario.run(['--stop-on-loop', '3']);
    expect(result.code, outputOf(result)).toBe(0);
    const warnings = result.logs.filter(
      (line) => line.level === 40 && String(line.msg).includes('no destination matches nobody-wants.bin'),
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ relPath: 'nobody-wants.bin' });
    expect(String(warnings[0]?.msg)).toMatch(/unmatched: move/);
    for (const passNumber of [1, 2, 3]) {
      expect(passSummary(result.logs, '(incoming)', passNumber)).toMatchObject({ skipped: 1 });
    }
    expect(Object.keys(await readTree(scenario.incoming))).toEqual(['nobody-wants.bin']);
    expect(Object.keys(await readTree(out('dst')))).toEqual(['wanted.csv']);
  });

  it('unmatched: move puts the file in unmatched_dir, path kept', async () => {
    await scenario.addFile('odd/nobody-wants.bin', 'orphan\n');
    await scenario.addFile('wanted.csv', 'wanted\n');
    await scenario.writeConfig({
      unmatched: 'move',
      unmatched_dir: scenario.path('unmatched'),
      destinations: [{ name: 'dst', path: out('dst'), include: ['*.csv'] }],
    });
    const result = await scenario.run(['--stop-on-loop', '1']);
    expect(result.code, outputOf(result)).toBe(0);
    expect(await readTree(scenario.incoming)).toEqual({});
    expect(await hashTree(scenario.path('unmatched'))).toEqual({
      'odd/nobody-wants.bin': sha256Of('orphan\n'),
    });
    expect(result.logs.some((line) => line.relPath === 'odd/nobody-wants.bin' && line.level === 40)).toBe(
      true,
    );
  });

  it('min_age: a file still being written in place by another producer waits until it is old enough', async () => {
    await scenario.addFile('old.csv', 'finished long ago\n');
    // Just written: an in-place producer may still be appending.
    await scenario.addFile('young.csv', 'half of it', Date.now());
    await scenario.writeConfig({ min_age: '1h', destinations: [{ name: 'dst', path: out('dst') }] });
    const first = await scenario.run(['--stop-on-loop', '1']);
    expect(first.code, outputOf(first)).toBe(0);
    expect(Object.keys(await readTree(out('dst')))).toEqual(['old.csv']);
    expect(Object.keys(await readTree(scenario.incoming))).toEqual(['young.csv']);
    expect(passSummary(first.logs, '(incoming)')).toMatchObject({ done: 1, waiting: 1 });

    // The producer finishes and the file ages past min_age.
    await scenario.addFile('young.csv', 'half of it, and the rest\n', Date.now() - 2 * 3_600_000);
    const second = await scenario.run(['--stop-on-loop', '1']);
    expect(second.code, outputOf(second)).toBe(0);
    expect(await hashTree(out('dst'))).toEqual({
      'old.csv': sha256Of('finished long ago\n'),
      'young.csv': sha256Of('half of it, and the rest\n'),
    });
    expect(await readTree(scenario.incoming)).toEqual({});
  });

  it('--dry-run prints the plan and changes nothing: no folders, incoming untouched, no ledger', async () => {
    await scenario.addFile('a.csv', 'a\n');
    await scenario.addFile('deep/b.txt', 'b\n');
    await scenario.writeConfig({
      destinations: [
        { name: 'csv', path: out('csv'), include: ['*.csv'] },
        { name: 'all', path: out('all') },
      ],
    });
    const incomingBefore = await readTree(scenario.incoming);
    const incomingDirBefore = await stat(scenario.incoming);
    const result = await scenario.run(['--dry-run']);
    expect(result.code, outputOf(result)).toBe(0);
    const plan = result.stdout.trim().split('\n').sort();
    expect(plan).toEqual(
      [
        `would copy ${scenario.incoming}/a.csv → csv:${out('csv')}/a.csv`,
        `would copy ${scenario.incoming}/a.csv → all:${out('all')}/a.csv`,
        `would copy ${scenario.incoming}/deep/b.txt → all:${out('all')}/deep/b.txt`,
        `would remove ${scenario.incoming}/a.csv once delivered`,
        `would remove ${scenario.incoming}/deep/b.txt once delivered`,
      ].sort(),
    );
    expect(await readTree(scenario.incoming)).toEqual(incomingBefore);
    expect((await stat(scenario.incoming)).mtimeMs).toBe(incomingDirBefore.mtimeMs);
    const topLevel = (await readdir(scenario.root)).sort();
    expect(topLevel).not.toContain('out');
    expect(topLevel).not.toContain('state');

    // After a real pass that reached only the csv destination, the plan names just what is missing.
    await writeFile(scenario.path('blocker'), 'a file where a folder should be\n');
    await scenario.writeConfig({
      destinations: [
        { name: 'csv', path: out('csv'), include: ['*.csv'] },
        { name: 'all', path: scenario.path('blocker', 'all') },
      ],
    });
    const partial = await scenario.run(['--stop-on-loop', '1']);
    expect(partial.code, outputOf(partial)).toBe(1);
    const again = await scenario.run(['--dry-run']);
    expect(again.code, outputOf(again)).toBe(0);
    expect(again.stdout).not.toContain('→ csv:');
    expect(again.stdout).toContain(`→ all:${scenario.path('blocker', 'all')}/a.csv`);
  });
});
