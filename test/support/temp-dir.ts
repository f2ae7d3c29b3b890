import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** All test temp folders live under one root so a crashed run leaves one place to clean. */
export function testTempRoot(): string {
  const root = join(tmpdir(), 'files-sync-link-tests');
  mkdirSync(root, { recursive: true });
  return root;
}

export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

export async function makeTempDir(prefix = 'tmp-'): Promise<TempDir> {
  const path = await mkdtemp(join(testTempRoot(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
