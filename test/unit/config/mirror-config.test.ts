/**
 * The mirror config: the three ways to write an end, defaults, and one clear line for
 * each mistake the rules catch (table of YAML texts → expected problem lines).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMirrorConfig, type MirrorConfig } from '../../../src/config/index.js';
import { SyncError } from '../../../src/errors/index.js';
import { makeWorkspace, type Workspace } from './config-test-kit.js';

describe('mirror config', () => {
  let workspace: Workspace;
  let counter = 0;
  beforeAll(async () => {
    workspace = await makeWorkspace();
  });
  afterAll(async () => {
    await workspace.root.remove();
  });

  async function write(text: string): Promise<string> {
    counter += 1;
    const path = join(workspace.configDir, `mirror-${counter}.yml`);
    await writeFile(path, text);
    return path;
  }
  async function load(text: string): Promise<MirrorConfig> {
    return loadMirrorConfig(await write(text), workspace.env);
  }
  async function problems(text: string): Promise<string[]> {
    const path = await write(text);
    const error = await loadMirrorConfig(path, workspace.env).then(
      () => undefined,
      (err: unknown) => err,
    );
    if (!(error instanceof SyncError)) throw new Error('expected the config to be refused');
    return (error.context.problems as string[]).map((line) => line.slice(path.length + 2));
  }

  it('reads the three forms of an end, with the defaults', async () => {
    const config = await load(`
jobs:
  - name: local
    source: data/a
    replica: /srv/a
  - name: pull
    source: sftp://feeds@sftp.example.org:2222/outbound
    private_key: ~/.ssh/id_ed25519
    known_hosts: ~/.ssh/known_hosts
    replica: data/pull
  - name: push
    source: data/b
    replica:
      url: sftp://mirror@backup.example.net/~/replica
      password_env: FEEDS_PASSWORD
      insecure_skip_host_key_check: true
    max_delete: 25
`);
    expect(config).toMatchObject({ kind: 'mirror', intervalMs: 300_000 });
    const [local, pull, push] = config.jobs;
    expect(local).toMatchObject({
      source: { kind: 'local', path: join(workspace.configDir, 'data', 'a') },
      replica: { kind: 'local', path: '/srv/a' },
      compare: 'size_mtime',
      links: 'skip',
      preserveMode: false,
      delete: true,
      maxDelete: { kind: 'percent', percent: 50 },
    });
    expect(pull?.source).toMatchObject({
      kind: 'sftp',
      path: '/outbound',
      sftp: { host: 'sftp.example.org', port: 2222, username: 'feeds', auth: { kind: 'key' } },
    });
    expect(push?.replica).toMatchObject({
      kind: 'sftp',
      path: 'replica',
      sftp: { username: 'mirror', auth: { kind: 'password' } },
    });
    expect(push?.maxDelete).toEqual({ kind: 'count', count: 25 });
  });

  it.each([
    [
      'a typo in a job key',
      'jobs:\n  - name: j\n    source: a\n    replcia: b\n',
      ['jobs[0].replcia: unknown key; did you mean "replica"?'],
    ],
    [
      'a typo in an end key',
      'jobs:\n  - name: j\n    source: { pth: a }\n    replica: b\n',
      ['jobs[0].source.pth: unknown key; did you mean "path"?'],
    ],
    [
      'a missing replica',
      'jobs:\n  - name: j\n    source: a\n',
      [expect.stringMatching(/^jobs\[0\]\.replica: required key is missing/)],
    ],
    [
      'max_delete above 100%',
      'jobs:\n  - name: j\n    source: a\n    replica: b\n    max_delete: 101%\n',
      [expect.stringMatching(/^jobs\[0\]\.max_delete: expected a count .* got "101%"/)],
    ],
    [
      'connection keys on a job without a URL end',
      'jobs:\n  - name: j\n    source: a\n    replica: b\n    private_key: ~/.ssh/id_ed25519\n',
      [expect.stringMatching(/^jobs\[0\]\.private_key: private_key on a job applies to .* sftp:\/\/ URL/)],
    ],
    [
      'SFTP keys on a local end',
      'jobs:\n  - name: j\n    source: { path: a, port: 22 }\n    replica: b\n',
      ['jobs[0].source.port: port applies to SFTP ends only; add url or host, or remove port'],
    ],
    [
      'copy-as-link into SFTP',
      'jobs:\n  - name: j\n    source: a\n    replica: sftp://u@h/r\n    agent: true\n    insecure_skip_host_key_check: true\n    links: copy-as-link\n',
      [expect.stringMatching(/^jobs\[0\]\.links: links: copy-as-link needs a local replica/)],
    ],
    [
      'a URL without a folder',
      'jobs:\n  - name: j\n    source: sftp://u@h\n    agent: true\n    insecure_skip_host_key_check: true\n    replica: b\n',
      ['jobs[0].source: the URL names no folder: add it, as in sftp://user@host/outbound'],
    ],
    [
      'backup_dir inside the replica, and with delete: false',
      'jobs:\n  - name: j\n    source: a\n    replica: b\n    backup_dir: b/.old\n    delete: false\n',
      [
        'jobs[0].backup_dir: backup_dir is not used with delete: false (nothing is removed); remove one',
        expect.stringMatching(/^jobs\[0\]\.backup_dir: .*b\/\.old is inside the replica/),
      ],
    ],
    [
      'state_dir inside a replica',
      'state_dir: b/state\njobs:\n  - name: j\n    source: a\n    replica: b\n',
      [expect.stringMatching(/^state_dir: .* is inside jobs\[0\]\.replica/)],
    ],
    [
      'two SFTP replicas on one server and path',
      'jobs:\n  - { name: x, source: a, replica: "sftp://u@h/srv/r", agent: true, insecure_skip_host_key_check: true }\n  - { name: y, source: c, replica: "sftp://v@H:22/srv/r/sub", agent: true, insecure_skip_host_key_check: true }\n',
      [
        expect.stringMatching(
          /^jobs\[1\]\.replica: overlaps the replica of jobs\[0\] \(sftp:\/\/h:22\/srv\/r\)/,
        ),
      ],
    ],
  ])('refuses %s', async (_name, text, expected) => {
    expect(await problems(text)).toEqual(expected);
  });
});
