/**
 * The example configs in etc/ are working configs (they load, given the `~/.ssh` files
 * and variables they name) and name every key the schemas accept, so the examples
 * cannot drift from the schema.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  copierKeys,
  fetcherKeys,
  loadCopierConfig,
  loadFetcherConfig,
  loadMirrorConfig,
  mirrorKeys,
  type SftpDestinationConfig,
} from '../../../src/config/index.js';
import { makeWorkspace, type Workspace } from './config-test-kit.js';

const ETC = join(import.meta.dirname, '..', '..', '..', 'etc');
const FETCHER_EXAMPLE = join(ETC, 'fetcher.yml');
const COPIER_EXAMPLE = join(ETC, 'copier.yml');
const MIRROR_EXAMPLE = join(ETC, 'mirror.yml');

/** `key:` at the start of a line, as an active key, a list item, or a commented alternative. */
function mentionsKey(text: string, key: string): boolean {
  return new RegExp(`^[ \\t]*(?:#[ \\t]*)?(?:-[ \\t]+)?${key}:`, 'm').test(text);
}

function allKeys(catalog: Readonly<Record<string, readonly string[]>>): string[] {
  return [...new Set(Object.values(catalog).flat())];
}

describe('the example configs', () => {
  let workspace: Workspace;
  beforeAll(async () => {
    workspace = await makeWorkspace();
  });
  afterAll(async () => {
    await workspace.root.remove();
  });

  it('etc/fetcher.yml loads, with the keys of the design contract', async () => {
    const config = await loadFetcherConfig(FETCHER_EXAMPLE, {
      HOME: workspace.home,
      KEY_PASSPHRASE: 'example passphrase',
    });
    expect(config.incoming).toBe(join(ETC, 'data', 'incoming'));
    expect(config.archive).toBe(join(ETC, 'data', 'archive'));
    expect(config.stateDir).toBe(join(ETC, 'var', 'state'));
    expect(config.logDir).toBe(join(ETC, 'log'));
    expect(config).toMatchObject({ concurrencyLimit: 32, intervalMs: 60_000 });
    const [source] = config.sources;
    expect(source).toMatchObject({
      name: 'partner-a',
      host: 'sftp.example.org',
      port: 22,
      username: 'feeds',
      auth: { kind: 'key', privateKeyPath: join(workspace.home, '.ssh', 'id_ed25519') },
      hostKey: { kind: 'known_hosts', knownHostsPath: join(workspace.home, '.ssh', 'known_hosts') },
      remoteDir: '/outbound',
      recursive: true,
      include: ['*.csv', '**/*.zip'],
      exclude: ['*.tmp'],
      minAgeMs: 30_000,
      afterFetch: 'keep',
    });
    if (source?.auth.kind !== 'key') throw new Error('expected key auth');
    expect(source.auth.passphrase?.reveal()).toBe('example passphrase');
  });

  it('etc/copier.yml loads, with a local and an SFTP destination', async () => {
    const config = await loadCopierConfig(COPIER_EXAMPLE, { HOME: workspace.home });
    expect(config.incoming).toBe(join(ETC, 'data', 'incoming'));
    expect(config).toMatchObject({ concurrencyLimit: 32, intervalMs: 10_000 });
    expect(config.destinations[0]).toMatchObject({
      kind: 'local',
      name: 'warehouse',
      path: join(ETC, 'data', 'out', 'warehouse'),
      include: ['*.csv'],
      onConflict: 'overwrite',
    });
    const upload = config.destinations[1] as SftpDestinationConfig;
    expect(upload).toMatchObject({ kind: 'sftp', name: 'partner-upload', path: '/inbound' });
    expect(upload.sftp).toMatchObject({ host: 'files.example.net', port: 22, username: 'upload' });
  });

  it('etc/mirror.yml loads, with a local, an SFTP-source and an SFTP-replica job', async () => {
    const config = await loadMirrorConfig(MIRROR_EXAMPLE, { HOME: workspace.home });
    expect(config).toMatchObject({ concurrencyLimit: 8, intervalMs: 300_000 });
    expect(config.jobs.map((job) => [job.name, job.source.kind, job.replica.kind])).toEqual([
      ['reports', 'local', 'local'],
      ['partner-outbound', 'sftp', 'local'],
      ['offsite', 'local', 'sftp'],
    ]);
    expect(config.jobs[0]).toMatchObject({
      source: { path: join(ETC, 'data', 'reports') },
      maxDelete: { kind: 'percent', percent: 50 },
      backupDir: join(ETC, 'data', 'replicas', '.reports-removed'),
    });
  });

  it.each([
    ['fetcher', FETCHER_EXAMPLE, fetcherKeys],
    ['copier', COPIER_EXAMPLE, copierKeys],
    ['mirror', MIRROR_EXAMPLE, mirrorKeys],
  ] as const)('the %s example names every key the schema accepts', (_kind, path, catalog) => {
    const text = readFileSync(path, 'utf8');
    const keys = allKeys(catalog);
    expect(keys.length).toBeGreaterThan(20);
    expect(keys.filter((key) => !mentionsKey(text, key))).toEqual([]);
  });

  it('names no key the schema does not accept', () => {
    for (const [path, catalog] of [
      [FETCHER_EXAMPLE, fetcherKeys],
      [COPIER_EXAMPLE, copierKeys],
      [MIRROR_EXAMPLE, mirrorKeys],
    ] as const) {
      const known = new Set(allKeys(catalog));
      const named = [
        ...readFileSync(path, 'utf8').matchAll(/^[ \t]*(?:#[ \t]*)?(?:-[ \t]+)?([a-z_]+):/gm),
      ].map((match) => match[1]);
      expect(named.filter((key) => !known.has(key as string))).toEqual([]);
    }
  });
});
