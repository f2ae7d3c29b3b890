import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import { listFiles, listTemporaries } from '../../support/fetcher-scenario.js';
import { MemoryStorage } from '../../support/memory-storage.js';
import { createFetchKit, type FetchKit, sourceConfig } from './fetch-test-kit.js';

/** A remote with every kind of link below /a, and a secret outside it. */
function remoteWithLinks(): MemoryStorage {
  const remote = new MemoryStorage();
  remote.addFile('/etc/passwd', 'root:x:0:0');
  remote.addFile('/a/real.csv', 'real');
  remote.addFile('/a/sub/deep.csv', 'deep');
  remote.addLink('/a/alias.csv', 'real.csv');
  remote.addLink('/a/deep-alias.csv', 'sub/deep.csv');
  remote.addLink('/a/passwd', '/etc/passwd');
  remote.addLink('/a/sneaky.csv', '../etc/passwd');
  remote.addLink('/a/chain.csv', 'passwd');
  remote.addLink('/a/folder-link', 'sub');
  remote.addLink('/a/broken.csv', 'missing.csv');
  return remote;
}

/** Every path the fetcher read bytes from. */
function reads(remote: MemoryStorage): string[] {
  return remote.calls
    .filter((call) => call.op === 'download' || call.op === 'openRead')
    .map((call) => call.path)
    .sort();
}

describe('links on the remote', () => {
  let kit: FetchKit;
  beforeEach(async () => {
    kit = await createFetchKit();
  });
  afterEach(async () => {
    await kit.close();
  });

  it('are not followed by default: skipped with one warning naming them, not a failure', async () => {
    const remote = remoteWithLinks();
    const source = sourceConfig('a');
    const [report] = await kit.pass(kit.config({}, [source]), [{ source, remote }]);

    expect(reads(remote)).toEqual(['/a/real.csv', '/a/sub/deep.csv']);
    expect(report).toMatchObject({ done: 2, failed: 0, skipped: 7 });
    expect(report?.error).toBeUndefined();
    const warning = kit.lines.find((line) => String(line.reason).startsWith('link-not-followed'));
    expect(warning).toMatchObject({ level: 40, name: 'a', count: 7 });
    expect(warning?.examples).toEqual([
      'alias.csv',
      'broken.csv',
      'chain.csv',
      'deep-alias.csv',
      'folder-link',
    ]);
  });

  it('with follow_links: a link to a file inside remote_dir is fetched; outside, to a folder or broken, skipped', async () => {
    const remote = remoteWithLinks();
    const source = sourceConfig('a', { followLinks: true });
    const [report] = await kit.pass(kit.config({}, [source]), [{ source, remote }]);

    // /etc/passwd is never read, whatever way the link reaches it.
    expect(reads(remote)).toEqual(['/a/alias.csv', '/a/deep-alias.csv', '/a/real.csv', '/a/sub/deep.csv']);
    expect(await listFiles(join(kit.incoming, 'a'))).toEqual([
      'alias.csv',
      'deep-alias.csv',
      'real.csv',
      'sub/deep.csv',
    ]);
    expect(await readFile(join(kit.incoming, 'a', 'alias.csv'), 'utf8')).toBe('real');
    expect(report).toMatchObject({ done: 4, failed: 0, skipped: 5 });
    expect(report?.notableSkips).toMatchObject({
      'link-skipped: points outside remote_dir': {
        count: 3,
        examples: ['chain.csv', 'passwd', 'sneaky.csv'],
      },
      'link-skipped: points at a folder or a special file': { count: 1, examples: ['folder-link'] },
    });
    expect(
      Object.entries(report?.notableSkips ?? {}).find(([reason]) =>
        reason.includes('cannot be resolved'),
      )?.[1],
    ).toMatchObject({ count: 1, examples: ['broken.csv'] });
  });

  it('with follow_links and after_fetch: delete, a fetched link is removed (not its target outside), once', async () => {
    const remote = remoteWithLinks();
    remote.addFile('/elsewhere/target.csv', 'target');
    remote.addLink('/a/inside-to-outside.csv', '/elsewhere/target.csv');
    const source = sourceConfig('a', { followLinks: true, afterFetch: 'delete' });
    const config = kit.config({}, [source]);
    const [report] = await kit.pass(config, [{ source, remote }], { concurrency: 1 });

    expect(report).toMatchObject({ done: 4, failed: 0 });
    for (const path of ['/a/alias.csv', '/a/deep-alias.csv', '/a/real.csv', '/a/sub/deep.csv'])
      expect(remote.has(path), path).toBe(false);
    // Not fetched, so not touched: the links that were skipped and whatever they point at.
    for (const path of ['/etc/passwd', '/a/passwd', '/a/inside-to-outside.csv', '/elsewhere/target.csv'])
      expect(remote.has(path), path).toBe(true);
    expect(kit.lines.filter((line) => String(line.msg).startsWith('left '))).toEqual([]);
    expect(await kit.ledger.pendingAfterFetch('a')).toEqual([]);
  });

  it.each(['delete', 'move'] as const)(
    'after_fetch %s of a fetched link whose target went first (retried next pass) still completes',
    async (afterFetch) => {
      const remote = new MemoryStorage();
      remote.addFile('/a/real.csv', 'real');
      remote.addLink('/a/alias.csv', 'real.csv');
      let refusals = 0;
      remote.beforeOp = (op, path) => {
        if ((op === 'remove' || op === 'rename') && path === '/a/alias.csv' && refusals++ === 0)
          throw new SyncError('E_PERMISSION', 'permission denied: /a/alias.csv', { op, path });
      };
      const source = sourceConfig('a', { followLinks: true, afterFetch, moveTo: '/done' });
      const config = kit.config({}, [source]);

      // The link's step fails; its target is fetched and its step done in the same pass.
      const [first] = await kit.pass(config, [{ source, remote }], { concurrency: 1 });
      expect(first).toMatchObject({ done: 2, failed: 1 });
      expect(remote.has('/a/real.csv')).toBe(false);
      expect(remote.has('/a/alias.csv')).toBe(true);

      // Retried: nothing left to compare the dangling link with, and nothing in it to lose.
      const [second] = await kit.pass(config, [{ source, remote }]);
      expect(second).toMatchObject({ done: 0, failed: 0 });
      expect(remote.has('/a/alias.csv')).toBe(false);
      expect(remote.has('/done/alias.csv')).toBe(afterFetch === 'move');
      expect(await kit.ledger.pendingAfterFetch('a')).toEqual([]);
    },
  );

  it('a file gone from the server between listing and download is a skip, not a failure', async () => {
    const remote = new MemoryStorage();
    remote.addFile('/a/real.csv', 'real');
    remote.addFile('/a/vanishing.csv', 'the partner takes it back');
    // Sorted after its target: with one file at a time the target is deleted before this link is read.
    remote.addLink('/a/zz-alias.csv', 'real.csv');
    remote.beforeOp = (op, path) => {
      if (op === 'download' && path === '/a/vanishing.csv') remote.nodes.delete(path);
    };
    const source = sourceConfig('a', { followLinks: true, afterFetch: 'delete' });
    const [report] = await kit.pass(kit.config({}, [source]), [{ source, remote }], { concurrency: 1 });

    expect(report).toMatchObject({ done: 1, failed: 0, skipped: 2 });
    expect(report?.error).toBeUndefined();
    // In either order: the link takes its target's mtime, and files go oldest first.
    expect(
      [...(report?.notableSkips['gone from the server before it could be fetched']?.examples ?? [])].sort(),
    ).toEqual(['vanishing.csv', 'zz-alias.csv']);
    expect(await listFiles(kit.incoming)).toEqual(['a/real.csv']);
    expect(await listTemporaries(kit.incoming, kit.archive)).toEqual([]);
  });
});
