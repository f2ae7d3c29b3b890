import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSharedFolderSync } from '../../../src/actions/shared-folder-sync.js';
import { makeTempDir } from '../../support/temp-dir.js';

/** A folder sync the test ends by hand, recording when each one started. */
function heldSyncs() {
  const started: { dirPath: string; resolve: () => void; reject: (err: Error) => void }[] = [];
  const syncDir = (dirPath: string) =>
    new Promise<void>((resolve, reject) => started.push({ dirPath, resolve, reject }));
  return { started, syncDir };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('shared folder sync', () => {
  it('starts at once when none runs; callers during a sync share the next one, started after it', async () => {
    const { started, syncDir } = heldSyncs();
    const sync = createSharedFolderSync(syncDir);
    const settled: string[] = [];
    const first = sync('/in/a').then(() => settled.push('first'));
    expect(started).toHaveLength(1);
    // These renamed while the first sync ran: it may have missed them.
    const second = sync('/in/a').then(() => settled.push('second'));
    const third = sync('/in/a').then(() => settled.push('third'));
    await turn();
    expect(started).toHaveLength(1);
    started[0]?.resolve();
    await first;
    await turn();
    expect(settled).toEqual(['first']);
    expect(started).toHaveLength(2);
    // Arrived while the second sync runs: needs a third one.
    const fourth = sync('/in/a').then(() => settled.push('fourth'));
    started[1]?.resolve();
    await Promise.all([second, third]);
    await turn();
    expect(settled).toEqual(['first', 'second', 'third']);
    expect(started).toHaveLength(3);
    started[2]?.resolve();
    await fourth;
    expect(settled).toEqual(['first', 'second', 'third', 'fourth']);
  });

  it('keeps folders apart, and fails every caller of a failed sync', async () => {
    const { started, syncDir } = heldSyncs();
    const sync = createSharedFolderSync(syncDir);
    const a = sync('/in/a');
    const b = sync('/in/b');
    expect(started.map((item) => item.dirPath)).toEqual(['/in/a', '/in/b']);
    const aAgain = sync('/in/a');
    started[0]?.reject(new Error('EIO'));
    await expect(a).rejects.toThrow('EIO');
    await turn();
    // The queued one still runs after a failure, and can succeed.
    expect(started).toHaveLength(3);
    started[1]?.resolve();
    started[2]?.resolve();
    await expect(b).resolves.toBeUndefined();
    await expect(aAgain).resolves.toBeUndefined();
  });

  it('syncs real folders', async () => {
    const temp = await makeTempDir('folder-sync-');
    try {
      const folder = join(temp.path, 'x');
      await mkdir(folder);
      const sync = createSharedFolderSync();
      await Promise.all([sync(folder), sync(folder), sync(temp.path)]);
      await expect(sync(join(temp.path, 'missing'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    } finally {
      await temp.remove();
    }
  });
});
