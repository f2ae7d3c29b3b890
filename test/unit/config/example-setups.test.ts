import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCopierConfig, loadFetcherConfig } from '../../../src/config/index.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const EXAMPLES_DIR = join(import.meta.dirname, '..', '..', '..', 'etc', 'examples');

describe('etc/examples: every example setup loads as shipped', () => {
  let temp: TempDir;
  let env: Record<string, string>;

  beforeAll(async () => {
    temp = await makeTempDir('examples-');
    const home = join(temp.path, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(home, '.ssh', 'id_ed25519')]);
    writeFileSync(join(home, '.ssh', 'known_hosts'), '');
    env = { HOME: home, PARTNER_B_PASSWORD: 'example-password' };
  });
  afterAll(async () => {
    await temp?.remove();
  });

  const files = readdirSync(EXAMPLES_DIR).filter((name) => name.endsWith('.yml'));

  it('has examples of both commands', () => {
    expect(files.some((name) => name.startsWith('fetcher-'))).toBe(true);
    expect(files.some((name) => name.startsWith('copier-'))).toBe(true);
  });

  it.each(files)('%s', async (name) => {
    const path = join(EXAMPLES_DIR, name);
    if (name.startsWith('fetcher-')) {
      const config = await loadFetcherConfig(path, env);
      expect(config.sources.length).toBeGreaterThan(0);
    } else {
      const config = await loadCopierConfig(path, env);
      expect(config.destinations.length).toBeGreaterThan(0);
    }
  });
});
