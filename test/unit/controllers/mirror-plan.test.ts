/** The mirror plan: a pure function of the two listings. */
import { describe, expect, it } from 'vitest';
import type { MirrorEntry } from '../../../src/controllers/mirror-listing.js';
import {
  deleteLimit,
  type PlanMirrorInput,
  planMirror,
  sameMtime,
} from '../../../src/controllers/mirror-plan.js';

const T = 1_700_000_000_000;

function file(relPath: string, sizeBytes = 1, mtimeMs = T, mode = 0o100644): MirrorEntry {
  return { relPath, type: 'file', sizeBytes, mtimeMs, mode };
}
function dir(relPath: string, mode = 0o40755): MirrorEntry {
  return { relPath, type: 'dir', sizeBytes: 4096, mtimeMs: T, mode };
}
function link(relPath: string, target: string): MirrorEntry {
  return { relPath, type: 'link', sizeBytes: target.length, mtimeMs: T, mode: 0o120777, linkTarget: target };
}
function side(...entries: MirrorEntry[]): Map<string, MirrorEntry> {
  return new Map(entries.map((entry) => [entry.relPath, entry]));
}
function plan(source: MirrorEntry[], replica: MirrorEntry[], overrides: Partial<PlanMirrorInput> = {}) {
  return planMirror({
    source: side(...source),
    replica: side(...replica),
    protectedPaths: new Set(),
    mtimeResolution: 'ms',
    preserveMode: false,
    delete: true,
    ...overrides,
  });
}
const paths = (entries: { relPath: string }[]) => entries.map((entry) => entry.relPath);

describe('planMirror', () => {
  it('creates what is new, writes what changed (size or mtime), removes the rest, leaves the same alone', () => {
    const result = plan(
      [
        dir('d'),
        file('d/new.txt'),
        file('grown.txt', 2),
        file('touched.txt', 1, T + 5_000),
        file('same.txt'),
      ],
      [
        file('grown.txt'),
        file('touched.txt'),
        file('same.txt'),
        file('gone.txt'),
        dir('olddir'),
        file('olddir/x'),
      ],
    );
    expect(paths(result.before.dirs)).toEqual(['d']);
    expect(paths(result.before.writes).sort()).toEqual(['d/new.txt', 'grown.txt', 'touched.txt']);
    expect(result.before.writes.find((write) => write.relPath === 'grown.txt')?.replaced).toBeDefined();
    expect(paths(result.removals).sort()).toEqual(['gone.txt', 'olddir/x']);
    expect(paths(result.dirRemovals)).toEqual(['olddir']);
    expect(result.unchanged).toBe(1);
    expect([result.sourceFiles, result.replicaFiles]).toEqual([4, 5]);
  });

  it('compare: checksum writes only what differs by content, and fixes an mtime without copying', () => {
    const result = plan([file('a', 3, T + 9_000), file('b', 3)], [file('a', 3), file('b', 3)], {
      contentDiffers: new Set(['b']),
    });
    expect(paths(result.before.writes)).toEqual(['b']);
    expect(result.touches).toEqual([{ relPath: 'a', type: 'file', mtimeMs: T + 9_000 }]);
  });

  it('preserve_mode: a mode difference alone is a touch', () => {
    const result = plan([file('a', 1, T, 0o100600), dir('d', 0o40700)], [file('a'), dir('d')], {
      preserveMode: true,
    });
    expect(result.touches).toEqual([
      { relPath: 'a', type: 'file', mode: 0o600 },
      { relPath: 'd', type: 'dir', mode: 0o700 },
    ]);
  });

  it('a folder where a file goes (and the reverse) is removed first; the write waits until after', () => {
    const result = plan(
      [file('x'), dir('y'), file('y/inner')],
      [dir('x'), file('x/a'), dir('x/b'), file('x/b/c'), file('y')],
    );
    expect(result.before.writes).toEqual([]);
    expect(paths(result.removals).sort()).toEqual(['x/a', 'x/b/c', 'y']);
    expect(paths(result.dirRemovals)).toEqual(['x/b', 'x']);
    expect(paths(result.after.dirs)).toEqual(['y']);
    expect(paths(result.after.writes).sort()).toEqual(['x', 'y/inner']);
  });

  it('never touches protected paths, nor removes the folders that hold them', () => {
    const result = plan(
      [file('a')],
      [file('a'), dir('keep'), file('keep/excluded.tmp'), dir('other'), file('other/x')],
      {
        protectedPaths: new Set(['keep/excluded.tmp', 'other/x']),
      },
    );
    expect(result.removals).toEqual([]);
    expect(result.dirRemovals).toEqual([]);
    // A conflict over a folder holding a protected entry is blocked, with why.
    const blocked = plan([file('keep')], [dir('keep'), file('keep/excluded.tmp')], {
      protectedPaths: new Set(['keep/excluded.tmp']),
    });
    expect(blocked.blocked).toEqual([
      { relPath: 'keep', reason: expect.stringMatching(/holds entries out of scope/) },
    ]);
    expect(blocked.removals).toEqual([]);
    expect(blocked.after.writes).toEqual([]);
  });

  it('delete: false removes nothing and does not clear a name of another kind', () => {
    const result = plan([file('x'), file('a', 2)], [dir('x'), file('x/in'), file('a'), file('extra')], {
      delete: false,
    });
    expect(result.removals).toEqual([]);
    expect(result.dirRemovals).toEqual([]);
    expect(paths(result.before.writes)).toEqual(['a']);
    expect(paths(result.blocked)).toEqual(['x']);
  });

  it('links: same target is unchanged, another target or a file in the way is replaced', () => {
    const result = plan(
      [link('l1', 'a'), link('l2', 'b'), link('l3', 'c')],
      [link('l1', 'a'), link('l2', 'a'), file('l3')],
    );
    expect(result.unchanged).toBe(1);
    expect(paths(result.before.writes).sort()).toEqual(['l2', 'l3']);
  });
});

describe('deleteLimit and sameMtime', () => {
  it.each([
    [{ kind: 'count', count: 3 } as const, 100, 3],
    [{ kind: 'percent', percent: 50 } as const, 10, 5],
    [{ kind: 'percent', percent: 50 } as const, 3, 1],
    [{ kind: 'percent', percent: 10 } as const, 1, 0],
    [{ kind: 'percent', percent: 100 } as const, 7, 7],
  ])('%j of %d files allows %d removals', (maxDelete, replicaFiles, allowed) => {
    expect(deleteLimit(maxDelete, replicaFiles)).toBe(allowed);
  });

  it('compares to the millisecond locally and to the second over SFTP', () => {
    expect(sameMtime(T + 0.4, T, 'ms')).toBe(true);
    expect(sameMtime(T + 1, T, 'ms')).toBe(false);
    expect(sameMtime(T + 999, T, 's')).toBe(true);
    expect(sameMtime(T + 1000, T, 's')).toBe(false);
  });
});
