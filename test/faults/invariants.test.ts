/**
 * The checker every fault scenario ends with must itself be able to fail: each
 * invariant is broken on purpose in a temp tree and must be caught.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashTree, sha256Of } from '../support/fetcher-scenario.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { checkInvariants, expectErrorLines, type InvariantSpec } from './invariants.js';

describe('faults: the invariant checker catches what it must', () => {
  let temp: TempDir;
  let root: string;
  let counter = 0;
  const originals = new Map([
    ['a.csv', sha256Of('a')],
    ['sub/b.csv', sha256Of('b')],
  ]);

  beforeAll(async () => {
    temp = await makeTempDir('faults-checker-');
  });
  afterAll(async () => {
    await temp?.remove();
  });
  beforeEach(async () => {
    counter += 1;
    root = join(temp.path, `case-${counter}`);
    for (const place of ['remote', 'incoming', 'archive', 'dest']) {
      await put(join(place, 'a.csv'), 'a');
      await put(join(place, 'sub/b.csv'), 'b');
    }
    await put('log/all-info.log', '{"msg":"fine"}\n');
  });

  async function put(relPath: string, content: string): Promise<void> {
    await mkdir(join(root, relPath, '..'), { recursive: true });
    await writeFile(join(root, relPath), content);
  }

  function spec(): InvariantSpec {
    return {
      context: 'self-check',
      originals,
      remoteDir: join(root, 'remote'),
      incoming: { dir: join(root, 'incoming'), expect: 'all' },
      archive: { dir: join(root, 'archive'), expect: 'all' },
      destinations: [{ dir: join(root, 'dest'), expect: 'all' }],
      copierRan: true,
      secrets: ['s3cret-value', 'pass"phrase'],
      logDirs: [join(root, 'log')],
      outputs: ['nothing here'],
    };
  }

  it('passes a tree that keeps every invariant', async () => {
    expect(await hashTree(join(root, 'incoming'))).toEqual(originals);
    await checkInvariants(spec());
  });

  it('catches a half-written file under a real name', async () => {
    await put('archive/sub/b.csv', 'b-but-cut');
    await expect(checkInvariants(spec())).rejects.toThrow(/is whole/);
  });

  it('catches a second copy under another name', async () => {
    await put('dest/a (1).csv', 'a');
    await expect(checkInvariants(spec())).rejects.toThrow(/not one of the originals/);
  });

  it('catches a temporary left behind, unless allowed', async () => {
    await put('incoming/.a.csv.1a2b3c4d.part', 'a');
    await expect(checkInvariants(spec())).rejects.toThrow(/temporaries/);
    await checkInvariants({ ...spec(), allowTemporaries: true });
  });

  it('catches a remote delete without an archive copy', async () => {
    await rm(join(root, 'remote', 'a.csv'));
    await rm(join(root, 'archive', 'a.csv'));
    await expect(
      checkInvariants({ ...spec(), archive: { dir: join(root, 'archive'), expect: 'some' } }),
    ).rejects.toThrow(/gone remotely, archive copy/);
  });

  it('catches a file that left incoming before a destination held it', async () => {
    await rm(join(root, 'incoming', 'a.csv'));
    await rm(join(root, 'dest', 'a.csv'));
    await expect(
      checkInvariants({
        ...spec(),
        incoming: { dir: join(root, 'incoming'), expect: 'some' },
        destinations: [{ dir: join(root, 'dest'), expect: 'some' }],
      }),
    ).rejects.toThrow(/left incoming/);
  });

  it('catches a secret in a log file, and one JSON-escaped in the output', async () => {
    await put('log/all-debug.log', '{"msg":"login with s3cret-value"}\n');
    await expect(checkInvariants(spec())).rejects.toThrow(/a secret/);
    await rm(join(root, 'log', 'all-debug.log'));
    await expect(checkInvariants({ ...spec(), outputs: ['{"msg":"pass\\"phrase"}'] })).rejects.toThrow(
      /a secret/,
    );
  });

  it('catches an error line without the host, or without a hint', () => {
    const line = (msg: string, hint?: string) => ({
      level: 50,
      msg,
      err: { code: 'E_CONNECTION', ...(hint ? { hint } : {}) },
    });
    const host = 'feeds@127.0.0.1:2222';
    expectErrorLines([line(`cannot fetch: lost ${host} — retry`, 'retry')], { code: 'E_CONNECTION', host });
    expect(() =>
      expectErrorLines([line('cannot fetch: lost — retry', 'retry')], { code: 'E_CONNECTION', host }),
    ).toThrow(/names the host/);
    expect(() =>
      expectErrorLines([line(`cannot fetch: lost ${host}`)], { code: 'E_CONNECTION', host }),
    ).toThrow(/has a hint/);
    expect(() => expectErrorLines([], { code: 'E_CONNECTION' })).toThrow(/error lines with err.code/);
  });
});
