import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import type { Storage } from '../../../src/storage/storage.js';
import { listFiles, listTemporaries } from '../../support/fetcher-scenario.js';
import { MemoryStorage } from '../../support/memory-storage.js';
import { createFetchKit, type FetchKit, linesStartingWith, sourceConfig } from './fetch-test-kit.js';

/**
 * The local disk, except that renames into `incoming` (the commit of a fetched file)
 * throw: the process "dies" between the ledger record and the rename.
 */
function crashBeforeCommit(local: Storage, incoming: string): Storage {
  return {
    ...local,
    rename(fromPath, toPath, options) {
      if (toPath.startsWith(`${incoming}/`))
        return Promise.reject(new Error('simulated crash before the rename'));
      return local.rename(fromPath, toPath, options);
    },
  };
}

describe('interrupted commits (recoverCommits through runFetchPass)', () => {
  let kit: FetchKit;
  beforeEach(async () => {
    kit = await createFetchKit();
  });
  afterEach(async () => {
    await kit.close();
  });

  /** Sources a (after_fetch: delete) and b, one file each; a's first pass dies before its commit. */
  async function crashWhileCommittingA() {
    const remoteA = new MemoryStorage();
    remoteA.addFile('/a/a.csv', 'from a');
    const remoteB = new MemoryStorage();
    remoteB.addFile('/b/b.csv', 'from b');
    const sourceA = sourceConfig('a', { afterFetch: 'delete' });
    const sourceB = sourceConfig('b');
    await kit.pass(kit.config({}, [sourceA]), [{ source: sourceA, remote: remoteA }], {
      local: crashBeforeCommit(kit.local, kit.incoming),
    });
    return { remoteA, remoteB, sourceA, sourceB };
  }

  it('a crash between the ledger record and the rename is finished next pass, without downloading again', async () => {
    const remote = new MemoryStorage();
    remote.addFile('/a/report.csv', 'report');
    const source = sourceConfig('a', { afterFetch: 'delete' });
    const config = kit.config({}, [source]);

    await kit.pass(config, [{ source, remote }], { local: crashBeforeCommit(kit.local, kit.incoming) });
    // The state the crash leaves: a committing record, its temporary, the archive copy; the remote untouched.
    const [pending] = await kit.ledger.pendingCommits('a');
    expect(pending?.tempPath).toMatch(/\/incoming\/a\/\.report\.csv\.[0-9a-f]{8}\.part$/);
    expect(await listTemporaries(kit.incoming)).toEqual([pending?.tempPath]);
    expect(await listFiles(kit.archive)).toEqual(['a/report.csv']);
    expect(remote.has('/a/report.csv')).toBe(true);

    const [report] = await kit.pass(config, [{ source, remote }]);

    expect(await readFile(join(kit.incoming, 'a', 'report.csv'), 'utf8')).toBe('report');
    expect(await listTemporaries(kit.incoming, kit.archive)).toEqual([]);
    expect(await kit.ledger.pendingCommits('a')).toEqual([]);
    expect(linesStartingWith(kit.lines, 'finished a commit interrupted by a crash')).toHaveLength(1);
    // Downloaded once; the after_fetch step ran only once the file was in incoming.
    expect(remote.calls.filter((call) => call.op === 'download')).toHaveLength(1);
    expect(remote.has('/a/report.csv')).toBe(false);
    expect(report).toMatchObject({ done: 0, failed: 0 });
  });

  it('the temporary of a disabled source’s interrupted commit is kept and committed, not cleaned away', async () => {
    const { remoteA, remoteB, sourceA, sourceB } = await crashWhileCommittingA();
    expect(await kit.ledger.pendingCommits('a')).toHaveLength(1);

    // Next run: source a is disabled in the config; only b is fetched.
    const disabledA = { ...sourceA, enabled: false };
    await kit.pass(kit.config({}, [disabledA, sourceB]), [{ source: sourceB, remote: remoteB }]);

    expect(await listFiles(kit.incoming)).toEqual(['a/a.csv', 'b/b.csv']);
    expect(await kit.ledger.pendingCommits('a')).toEqual([]);

    // Re-enabled: the delete runs only now that its file is in incoming.
    await kit.pass(kit.config({}, [sourceA]), [{ source: sourceA, remote: remoteA }]);
    expect(remoteA.has('/a/a.csv')).toBe(false);
    expect(await readFile(join(kit.incoming, 'a', 'a.csv'), 'utf8')).toBe('from a');
  });

  it('the interrupted commit of a source taken out of the config is finished, not cleaned away', async () => {
    const { remoteA, remoteB, sourceB } = await crashWhileCommittingA();
    expect(await kit.ledger.sourcesWithPendingCommits()).toEqual(['a']);

    // Next run: source a is gone from the config altogether.
    await kit.pass(kit.config({}, [sourceB]), [{ source: sourceB, remote: remoteB }]);

    expect(await listFiles(kit.incoming)).toEqual(['a/a.csv', 'b/b.csv']);
    expect(await readFile(join(kit.incoming, 'a', 'a.csv'), 'utf8')).toBe('from a');
    expect(await listTemporaries(kit.incoming, kit.archive)).toEqual([]);
    expect(await kit.ledger.sourcesWithPendingCommits()).toEqual([]);
    // Nobody runs a's after_fetch any more: its file stays on the server.
    expect(remoteA.has('/a/a.csv')).toBe(true);
  });

  it('a commit that cannot be finished keeps its temporary and counts as a failure of its source', async () => {
    const remote = new MemoryStorage();
    remote.addFile('/a/x.csv', 'x');
    const source = sourceConfig('a', { afterFetch: 'delete' });
    const config = kit.config({}, [source]);
    await kit.pass(config, [{ source, remote }], { local: crashBeforeCommit(kit.local, kit.incoming) });
    const [pending] = await kit.ledger.pendingCommits('a');

    // The rename keeps failing on the next pass too (a denied folder, say).
    const [report] = await kit.pass(config, [{ source, remote }], {
      local: crashBeforeCommit(kit.local, kit.incoming),
    });
    expect(report?.failed).toBe(1);
    expect(linesStartingWith(kit.lines, 'cannot finish a commit')[0]).toMatchObject({
      source: 'a',
      remotePath: '/a/x.csv',
    });
    expect(await listTemporaries(kit.incoming)).toEqual([pending?.tempPath]);
    expect(remote.has('/a/x.csv')).toBe(true);

    const [healed] = await kit.pass(config, [{ source, remote }]);
    expect(healed?.failed).toBe(0);
    expect(await readFile(join(kit.incoming, 'a', 'x.csv'), 'utf8')).toBe('x');
    expect(remote.has('/a/x.csv')).toBe(false);
  });

  it('leftover temporaries without a record are removed at the start of a pass; files are kept', async () => {
    const remote = new MemoryStorage();
    remote.addFile('/a/kept.csv', 'kept');
    const source = sourceConfig('a');
    const config = kit.config({}, [source]);
    await kit.pass(config, [{ source, remote }]);
    const leftovers = [
      join(kit.incoming, 'a', '.kept.csv.0badf00d.part'),
      join(kit.archive, 'a', '.other.csv.12345678.part'),
    ];
    for (const path of leftovers) await writeFile(path, 'half a file');

    await kit.pass(config, [{ source, remote }]);

    expect(await listTemporaries(kit.incoming, kit.archive)).toEqual([]);
    expect(await listFiles(kit.incoming)).toEqual(['a/kept.csv']);
    const removed = linesStartingWith(kit.lines, 'removed ').map((line) => [line.dirPath, line.count]);
    expect(removed).toEqual([
      [kit.incoming, 1],
      [kit.archive, 1],
    ]);
  });

  it('a pending after_fetch step is dropped, not run elsewhere, when the source no longer asks for it', async () => {
    const remote = new MemoryStorage();
    remote.addFile('/a/x.csv', 'x');
    let refuse = true;
    remote.beforeOp = (op, path) => {
      if (refuse && op === 'rename' && path === '/a/x.csv')
        throw new SyncError('E_PERMISSION', 'permission denied: /a/x.csv', { op, path });
    };
    const moving = sourceConfig('a', { afterFetch: 'move', moveTo: '/a-done' });
    const [first] = await kit.pass(kit.config({}, [moving]), [{ source: moving, remote }]);
    expect(first?.failed).toBe(1);
    expect(await kit.ledger.pendingAfterFetch('a')).toHaveLength(1);

    // The operator switches the source to keep (move_to goes with it); the server would now allow the move.
    refuse = false;
    const keeping = sourceConfig('a', { afterFetch: 'keep' });
    const [second] = await kit.pass(kit.config({}, [keeping]), [{ source: keeping, remote }]);

    expect(second).toMatchObject({ failed: 0, done: 0 });
    expect([...remote.nodes.keys()].filter((path) => path.endsWith('x.csv'))).toEqual(['/a/x.csv']);
    expect(await kit.ledger.pendingAfterFetch('a')).toEqual([]);
    expect(linesStartingWith(kit.lines, 'left /a/x.csv on the server')[0]).toMatchObject({
      level: 40,
      source: 'a',
      remotePath: '/a/x.csv',
    });
  });
});
