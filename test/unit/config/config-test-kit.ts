/**
 * Shared set-up for the config tests: a temp workspace with a config folder and a
 * HOME holding the `~/.ssh` files configs refer to, and helpers that load a YAML text
 * and return either the config or the problem lines.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { expect } from 'vitest';
import type { CopierConfig, Env, FetcherConfig } from '../../../src/config/index.js';
import { loadCopierConfig, loadFetcherConfig } from '../../../src/config/index.js';
import { SyncError } from '../../../src/errors/index.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

export type ConfigKindName = 'fetcher' | 'copier';

export interface Workspace {
  readonly root: TempDir;
  /** Folder the config files are written to (relative paths resolve against it). */
  readonly configDir: string;
  readonly home: string;
  /** The environment handed to the loader: HOME, SSH_AUTH_SOCK and the variables the bases use. */
  readonly env: Env;
}

export async function makeWorkspace(): Promise<Workspace> {
  const root = await makeTempDir('config-');
  const configDir = join(root.path, 'etc');
  const home = join(root.path, 'home');
  await mkdir(configDir, { recursive: true });
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  // The rules only check that these files can be read; their content is the SFTP layer's business.
  await writeFile(join(home, '.ssh', 'id_ed25519'), 'not a real key\n', { mode: 0o600 });
  await writeFile(join(home, '.ssh', 'known_hosts'), '', { mode: 0o600 });
  return {
    root,
    configDir,
    home,
    env: { HOME: home, SSH_AUTH_SOCK: join(root.path, 'agent.sock'), FEEDS_PASSWORD: 'pw-from-env' },
  };
}

/** A valid fetcher config: each bad-config row changes one thing. */
export const FETCHER_BASE = `
incoming: data/incoming
archive: data/archive
sources:
  - name: partner-a
    host: sftp.example.org
    username: feeds
    private_key: ~/.ssh/id_ed25519
    known_hosts: ~/.ssh/known_hosts
    remote_dir: /outbound
`;

/** A valid copier config with one local destination. */
export const COPIER_BASE = `
incoming: data/incoming
destinations:
  - name: warehouse
    path: data/out/warehouse
`;

export function baseText(kind: ConfigKindName): string {
  return kind === 'fetcher' ? FETCHER_BASE : COPIER_BASE;
}

/** A parsed YAML mapping, as a mutation edits it. */
export type RawTree = Record<string, unknown>;

/** The list under `key` (`sources`, `destinations`, `include`) of a tree, to read or push to. */
export function items(tree: RawTree, key: string): RawTree[] {
  const list = tree[key];
  if (!Array.isArray(list)) throw new Error(`${key} is not a list in the base config`);
  return list as RawTree[];
}

/** The base as a plain tree, changed by `mutate`, written back as YAML. */
export function mutateBase(kind: ConfigKindName, mutate: (tree: RawTree) => void): string {
  const tree = load(baseText(kind)) as RawTree;
  mutate(tree);
  return dump(tree);
}

let fileCounter = 0;

export async function writeConfig(workspace: Workspace, text: string, fileName?: string): Promise<string> {
  fileCounter += 1;
  const path = join(workspace.configDir, fileName ?? `config-${fileCounter}.yml`);
  await writeFile(path, text);
  return path;
}

export function loadKind(
  kind: ConfigKindName,
  configPath: string,
  env: Env,
): Promise<FetcherConfig | CopierConfig> {
  return kind === 'fetcher' ? loadFetcherConfig(configPath, env) : loadCopierConfig(configPath, env);
}

/** Loads a text that must be refused and returns the problem lines of its E_CONFIG error. */
export async function problemsOf(
  workspace: Workspace,
  kind: ConfigKindName,
  text: string,
  env: Env = workspace.env,
): Promise<{ configPath: string; problems: string[]; error: SyncError }> {
  const configPath = await writeConfig(workspace, text);
  let caught: unknown;
  try {
    await loadKind(kind, configPath, env);
  } catch (err) {
    caught = err;
  }
  expect(caught, 'the config should have been refused').toBeInstanceOf(SyncError);
  const error = caught as SyncError;
  expect(error.code).toBe('E_CONFIG');
  const problems = error.context.problems as string[];
  expect(Array.isArray(problems)).toBe(true);
  for (const line of problems) expect(line).not.toContain('\n');
  return { configPath, problems, error };
}

export async function loadFetcher(workspace: Workspace, text: string, env?: Env): Promise<FetcherConfig> {
  return loadFetcherConfig(await writeConfig(workspace, text), env ?? workspace.env);
}

export async function loadCopier(workspace: Workspace, text: string, env?: Env): Promise<CopierConfig> {
  return loadCopierConfig(await writeConfig(workspace, text), env ?? workspace.env);
}
