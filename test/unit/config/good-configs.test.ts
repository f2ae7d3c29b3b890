/**
 * What a valid config loads to: durations, sizes, `${ENV}`, paths resolved against
 * the config file's folder, defaults, SFTP destinations by URL, and a result that is
 * deeply frozen and holds its secrets as `Secret`s.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectSecrets,
  type FetcherConfig,
  formatDuration,
  formatSize,
  parseDuration,
  parseSize,
  Secret,
  type SftpDestinationConfig,
} from '../../../src/config/index.js';
import {
  COPIER_BASE,
  FETCHER_BASE,
  loadCopier,
  loadFetcher,
  makeWorkspace,
  mutateBase,
  items,
  type RawTree,
  type Workspace,
  writeConfig,
} from './config-test-kit.js';
import { loadFetcherConfig } from '../../../src/config/index.js';

const source = (tree: RawTree) => items(tree, 'sources')[0]!;

let workspace: Workspace;
beforeAll(async () => {
  workspace = await makeWorkspace();
});
afterAll(async () => {
  await workspace.root.remove();
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1m30s', 90_000],
    ['1h 15m', 4_500_000],
    ['1.5s', 1_500],
    ['1d', 86_400_000],
    [0, 0],
    ['0', 0],
  ] as const)('%s is %d ms in a loaded config', async (text, ms) => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        t.interval = text;
        source(t).min_age = text;
      }),
    );
    expect(config.intervalMs).toBe(ms);
    expect(config.sources[0]?.minAgeMs).toBe(ms);
  });

  it.each([60, '60', '5 minutes', '-5s', '5x', '', 'ms'])('parseDuration refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('formats back to the short form', () => {
    expect([500, 1_500, 90_000, 7_200_000].map(formatDuration)).toEqual(['500ms', '1.5s', '1m30s', '2h']);
  });
});

describe('sizes', () => {
  it.each([
    ['512KiB', 524_288],
    ['1GiB', 1_073_741_824],
    ['100MiB', 104_857_600],
    ['10MB', 10_000_000],
    ['1.5 KiB', 1_536],
    ['4096', 4_096],
    [4096, 4_096],
    [0, 0],
  ] as const)('%s is %d bytes in a loaded config', async (text, bytes) => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        t.min_free_space = text;
        source(t).max_size = text;
      }),
    );
    expect(config.minFreeSpaceBytes).toBe(bytes);
    expect(config.sources[0]?.maxSizeBytes).toBe(bytes);
  });

  it.each(['-1', '1.5', '10 parsecs', 'GiB', '', -1, 1.5])('parseSize refuses %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it('formats back with binary units', () => {
    expect([512, 1_536, 1_073_741_824].map(formatSize)).toEqual(['512 B', '1.5 KiB', '1 GiB']);
  });
});

describe('${ENV} interpolation', () => {
  it('replaces ${NAME} in any string value, numbers and booleans included', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        source(t).host = '${PARTNER_HOST}';
        source(t).port = '${PARTNER_PORT}';
        source(t).recursive = '${RECURSE}';
        source(t).remote_dir = '/out/${PARTNER_DIR}/today';
        source(t).include = ['*.${EXT}'];
      }),
      {
        ...workspace.env,
        PARTNER_HOST: 'sftp.partner.test',
        PARTNER_PORT: '2222',
        RECURSE: 'true',
        PARTNER_DIR: 'feeds',
        EXT: 'csv',
      },
    );
    const loaded = config.sources[0]!;
    expect(loaded.host).toBe('sftp.partner.test');
    expect(loaded.port).toBe(2222);
    expect(loaded.recursive).toBe(true);
    expect(loaded.remoteDir).toBe('/out/feeds/today');
    expect(loaded.include).toEqual(['*.csv']);
  });

  it('uses ${NAME:-default} when NAME is unset or empty, and the value when set', async () => {
    const text = mutateBase('fetcher', (t) => {
      source(t).host = '${PARTNER_HOST:-sftp.fallback.test}';
      source(t).remote_dir = '${PARTNER_DIR:-/outbound}';
      source(t).exclude = ['${SKIP:-}*.tmp'];
    });
    const unset = await loadFetcher(workspace, text, { ...workspace.env, PARTNER_DIR: '' });
    expect(unset.sources[0]?.host).toBe('sftp.fallback.test');
    expect(unset.sources[0]?.remoteDir).toBe('/outbound');
    expect(unset.sources[0]?.exclude).toEqual(['*.tmp']);
    const set = await loadFetcher(workspace, text, { ...workspace.env, PARTNER_HOST: 'real.test' });
    expect(set.sources[0]?.host).toBe('real.test');
  });

  it('reads $${ as a literal ${ and does not expand it', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        source(t).remote_dir = '/out/$${NOT_A_VAR}/x';
      }),
      { ...workspace.env, NOT_A_VAR: 'expanded' },
    );
    expect(config.sources[0]?.remoteDir).toBe('/out/${NOT_A_VAR}/x');
  });

  it('does not expand a value that itself holds ${…}', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        source(t).remote_dir = '${DIR}';
      }),
      { ...workspace.env, DIR: '/out/${HOME}' },
    );
    expect(config.sources[0]?.remoteDir).toBe('/out/${HOME}');
  });
});

describe('paths', () => {
  it('resolves relative local paths against the config file folder, not the working directory', async () => {
    const nested = join(workspace.configDir, 'site');
    await mkdir(nested, { recursive: true });
    const configPath = await writeConfig(
      workspace,
      mutateBase('fetcher', (t) => {
        t.incoming = 'data/incoming';
        t.archive = '../archive';
        t.state_dir = './state/';
        source(t).private_key = 'keys/id_ed25519';
      }),
      'site/relative.yml',
    );
    await mkdir(join(nested, 'keys'));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(nested, 'keys', 'id_ed25519'), 'key\n');
    const config = await loadFetcherConfig(configPath, workspace.env);
    expect(process.cwd()).not.toBe(nested);
    expect(config.incoming).toBe(join(nested, 'data', 'incoming'));
    expect(config.archive).toBe(join(workspace.configDir, 'archive'));
    expect(config.stateDir).toBe(join(nested, 'state'));
    expect(config.logDir).toBe(join(nested, 'log'));
    expect(config.configPath).toBe(configPath);
    expect(config.sources[0]?.auth).toEqual({
      kind: 'key',
      privateKeyPath: join(nested, 'keys', 'id_ed25519'),
    });
  });

  it('expands ~ to HOME from the environment given to the loader', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        t.incoming = '~/incoming';
        t.log_dir = '~';
      }),
    );
    expect(config.incoming).toBe(join(workspace.home, 'incoming'));
    expect(config.logDir).toBe(workspace.home);
    expect(config.sources[0]?.auth).toEqual({
      kind: 'key',
      privateKeyPath: join(workspace.home, '.ssh', 'id_ed25519'),
    });
    expect(config.sources[0]?.hostKey).toEqual({
      kind: 'known_hosts',
      knownHostsPath: join(workspace.home, '.ssh', 'known_hosts'),
    });
  });

  it('keeps absolute local paths (normalised) and remote paths as written', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        t.incoming = '/srv/feeds//incoming/';
        t.archive = '/srv/feeds/archive/../archive2';
        source(t).remote_dir = 'outbound/';
        source(t).after_fetch = 'move';
        source(t).move_to = '/done/';
      }),
    );
    expect(config.incoming).toBe('/srv/feeds/incoming');
    expect(config.archive).toBe('/srv/feeds/archive2');
    expect(config.sources[0]?.remoteDir).toBe('outbound');
    expect(config.sources[0]?.moveTo).toBe('/done');
  });
});

describe('defaults', () => {
  it('fills every fetcher default', async () => {
    const config = await loadFetcher(workspace, FETCHER_BASE);
    const dir = workspace.configDir;
    expect(config).toEqual({
      kind: 'fetcher',
      configPath: expect.stringMatching(/\.yml$/),
      concurrencyLimit: 32,
      intervalMs: 60_000,
      shutdownGraceMs: 10_000,
      stateDir: join(dir, 'var', 'state'),
      logDir: join(dir, 'log'),
      incoming: join(dir, 'data', 'incoming'),
      archive: join(dir, 'data', 'archive'),
      archiveLayout: '{source}/{path}',
      minFreeSpaceBytes: 0,
      sources: [
        {
          name: 'partner-a',
          enabled: true,
          host: 'sftp.example.org',
          port: 22,
          username: 'feeds',
          auth: { kind: 'key', privateKeyPath: join(workspace.home, '.ssh', 'id_ed25519') },
          hostKey: { kind: 'known_hosts', knownHostsPath: join(workspace.home, '.ssh', 'known_hosts') },
          connections: 4,
          connectTimeoutMs: 20_000,
          operationTimeoutMs: 60_000,
          keepaliveIntervalMs: 15_000,
          retries: 3,
          readConcurrency: 16,
          chunkSizeBytes: 261_120,
          remoteDir: '/outbound',
          recursive: false,
          include: [],
          exclude: [],
          minAgeMs: 0,
          followLinks: false,
          afterFetch: 'keep',
          verify: 'size',
          incomingLayout: '{source}/{path}',
        },
      ],
    });
  });

  it('fills every copier default', async () => {
    const config = await loadCopier(workspace, COPIER_BASE);
    const dir = workspace.configDir;
    expect(config).toEqual({
      kind: 'copier',
      configPath: expect.stringMatching(/\.yml$/),
      concurrencyLimit: 32,
      intervalMs: 10_000,
      shutdownGraceMs: 10_000,
      stateDir: join(dir, 'var', 'state'),
      logDir: join(dir, 'log'),
      incoming: join(dir, 'data', 'incoming'),
      minAgeMs: 0,
      unmatched: 'keep',
      watch: false,
      destinations: [
        {
          kind: 'local',
          name: 'warehouse',
          enabled: true,
          path: join(dir, 'data', 'out', 'warehouse'),
          link: 'copy',
          include: [],
          exclude: [],
          onConflict: 'overwrite',
          verify: 'size',
          minFreeSpaceBytes: 0,
          preserveMtime: true,
        },
      ],
    });
  });

  it('a source layout overrides the top-level one; one glob is a list of one', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        t.incoming_layout = '{source}/{dir}/{name}';
        items(t, 'sources').push({
          ...source(t),
          name: 'partner-b',
          incoming_layout: '{date}/{name}',
          include: '*.zip',
        });
      }),
    );
    expect(config.sources.map((s) => s.incomingLayout)).toEqual(['{source}/{dir}/{name}', '{date}/{name}']);
    expect(config.sources[1]?.include).toEqual(['*.zip']);
  });

  it('takes schedule with time_zone instead of interval, and octal modes in quotes', async () => {
    const config = await loadCopier(
      workspace,
      `${COPIER_BASE}schedule: "*/5 * * * *"\ntime_zone: Europe/Paris\nfile_mode: "0640"\ndir_mode: "750"\n`,
    );
    expect(config.schedule).toBe('*/5 * * * *');
    expect(config.timeZone).toBe('Europe/Paris');
    expect(config.fileMode).toBe(0o640);
    expect(config.dirMode).toBe(0o750);
  });
});

describe('authentication and host keys', () => {
  it('holds a password as a Secret that prints as [REDACTED]', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        delete source(t).private_key;
        source(t).password_env = 'FEEDS_PASSWORD';
      }),
    );
    const auth = config.sources[0]?.auth;
    expect(auth?.kind).toBe('password');
    if (auth?.kind !== 'password') throw new Error('unreachable');
    expect(auth.password).toBeInstanceOf(Secret);
    expect(auth.password.reveal()).toBe('pw-from-env');
    expect(String(auth.password)).toBe('[REDACTED]');
    expect(`${auth.password.toString()}`).toBe('[REDACTED]');
    expect(inspect(config, { depth: 10 })).not.toContain('pw-from-env');
    expect(JSON.stringify(config)).not.toContain('pw-from-env');
    expect(JSON.stringify(config)).toContain('"password":"[REDACTED]"');
    expect(collectSecrets(config)).toEqual(['pw-from-env']);
  });

  it('holds a key passphrase as a Secret', async () => {
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        source(t).passphrase_env = 'KEY_PASSPHRASE';
      }),
      { ...workspace.env, KEY_PASSPHRASE: 'correct horse battery' },
    );
    const auth = config.sources[0]?.auth;
    if (auth?.kind !== 'key') throw new Error(`expected key auth, got ${auth?.kind}`);
    expect(auth.passphrase?.reveal()).toBe('correct horse battery');
    expect(inspect(config, { depth: 10 })).not.toContain('correct horse');
    expect(collectSecrets(config)).toEqual(['correct horse battery']);
  });

  it('takes the agent socket from SSH_AUTH_SOCK, pinned fingerprints, and the explicit opt-out', async () => {
    const fingerprint = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';
    const config = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        delete source(t).private_key;
        delete source(t).known_hosts;
        source(t).agent = true;
        source(t).host_key = fingerprint;
        items(t, 'sources').push({
          ...source(t),
          name: 'lab',
          host_key: undefined,
          insecure_skip_host_key_check: true,
        });
        delete items(t, 'sources')[1]!.host_key;
      }),
    );
    expect(config.sources[0]?.auth).toEqual({ kind: 'agent', agentSocketPath: workspace.env.SSH_AUTH_SOCK });
    expect(config.sources[0]?.hostKey).toEqual({ kind: 'fingerprint', fingerprints: [fingerprint] });
    expect(config.sources[1]?.hostKey).toEqual({ kind: 'insecure' });
  });
});

describe('SFTP destinations', () => {
  const sftpKeys = '    private_key: ~/.ssh/id_ed25519\n    known_hosts: ~/.ssh/known_hosts\n';

  it('reads user, host, port and folder from an sftp:// URL', async () => {
    const config = await loadCopier(
      workspace,
      `${COPIER_BASE}  - name: upload\n    url: sftp://up%40load@files.example.net:2222/in/bound\n${sftpKeys}`,
    );
    const upload = config.destinations[1] as SftpDestinationConfig;
    expect(upload.kind).toBe('sftp');
    expect(upload.path).toBe('/in/bound');
    expect(upload.sftp).toMatchObject({ host: 'files.example.net', port: 2222, username: 'up@load' });
  });

  it('reads a folder below the login folder as /~/', async () => {
    const config = await loadCopier(
      workspace,
      `${COPIER_BASE}  - name: upload\n    url: sftp://upload@[::1]/~/inbound\n${sftpKeys}`,
    );
    const upload = config.destinations[1] as SftpDestinationConfig;
    expect(upload.path).toBe('inbound');
    expect(upload.sftp).toMatchObject({ host: '::1', port: 22, username: 'upload' });
  });

  it('takes host, port, username and path as keys instead', async () => {
    const config = await loadCopier(
      workspace,
      `${COPIER_BASE}  - name: upload\n    host: files.example.net\n    port: 2200\n    username: upload\n    path: /inbound/\n${sftpKeys}`,
    );
    const upload = config.destinations[1] as SftpDestinationConfig;
    expect(upload).toMatchObject({ kind: 'sftp', path: '/inbound' });
    expect(config.destinations[0]?.kind).toBe('local');
    expect(upload.sftp).toMatchObject({ host: 'files.example.net', port: 2200, username: 'upload' });
  });
});

describe('YAML', () => {
  it('merges a shared source with <<: *anchor, keys written beside it winning', async () => {
    const config = await loadFetcher(
      workspace,
      `incoming: data/incoming
sources:
  - &partner
    name: partner-a
    host: sftp.example.org
    username: feeds
    private_key: ~/.ssh/id_ed25519
    known_hosts: ~/.ssh/known_hosts
    remote_dir: /outbound/a
    min_age: 1m
  - <<: *partner
    name: partner-b
    remote_dir: /outbound/b
`,
    );
    expect(config.sources.map((s) => [s.name, s.host, s.remoteDir, s.minAgeMs])).toEqual([
      ['partner-a', 'sftp.example.org', '/outbound/a', 60_000],
      ['partner-b', 'sftp.example.org', '/outbound/b', 60_000],
    ]);
  });
});

describe('the result', () => {
  it('is deeply frozen', async () => {
    const config: FetcherConfig = await loadFetcher(
      workspace,
      mutateBase('fetcher', (t) => {
        source(t).include = ['*.csv'];
      }),
    );
    const nodes: unknown[] = [];
    const walk = (node: unknown) => {
      if (node === null || typeof node !== 'object') return;
      nodes.push(node);
      for (const child of Object.values(node)) walk(child);
    };
    walk(config);
    expect(nodes.length).toBeGreaterThan(5);
    for (const node of nodes) expect(Object.isFrozen(node)).toBe(true);
    const mutable = config as unknown as { incoming: string; sources: { port: number }[] & unknown[] };
    expect(() => {
      mutable.incoming = '/elsewhere';
    }).toThrow(TypeError);
    expect(() => {
      mutable.sources[0]!.port = 1;
    }).toThrow(TypeError);
    expect(() => mutable.sources.push({ port: 2 })).toThrow(TypeError);
  });
});
