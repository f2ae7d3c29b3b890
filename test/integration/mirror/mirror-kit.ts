/**
 * Helpers for the mirror-files end-to-end tests: build trees, take exact snapshots
 * (content, type, mtime, inode) to prove "nothing touched", compare a replica with
 * its source, write configs, run the compiled CLI and read its event lines.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { type CliResult, jsonLines, runCli } from '../../support/run-cli.js';

export interface SnapshotEntry {
  type: 'file' | 'dir' | 'link' | 'other';
  sha256?: string;
  target?: string;
  sizeBytes: number;
  mtimeMs: number;
  mode: number;
  ino: number;
}

/** Every entry below `root` (links not followed), by relative path. */
export async function snapshot(root: string): Promise<Map<string, SnapshotEntry>> {
  const out = new Map<string, SnapshotEntry>();
  let names: string[];
  try {
    names = await readdir(root, { recursive: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return out;
    throw err;
  }
  for (const rel of names.sort()) {
    const path = join(root, rel);
    const stats = await lstat(path);
    const type = stats.isFile()
      ? 'file'
      : stats.isDirectory()
        ? 'dir'
        : stats.isSymbolicLink()
          ? 'link'
          : 'other';
    out.set(rel, {
      type,
      ...(type === 'file'
        ? {
            sha256: createHash('sha256')
              .update(await readFile(path))
              .digest('hex'),
          }
        : {}),
      ...(type === 'link' ? { target: await readlink(path) } : {}),
      sizeBytes: stats.size,
      mtimeMs: stats.mtimeMs,
      mode: stats.mode & 0o7777,
      ino: stats.ino,
    });
  }
  return out;
}

/** The replica holds exactly the source's entries: same names, kinds, bytes, link targets and mtimes. */
export async function expectMirrored(
  sourceRoot: string,
  replicaRoot: string,
  options: { ignore?: (relPath: string) => boolean; mtimeResolution?: 'ms' | 's'; modes?: boolean } = {},
): Promise<void> {
  const keep = (map: Map<string, SnapshotEntry>) =>
    new Map([...map].filter(([rel]) => !options.ignore?.(rel)));
  const source = keep(await snapshot(sourceRoot));
  const replica = keep(await snapshot(replicaRoot));
  expect([...replica.keys()].sort()).toEqual([...source.keys()].sort());
  for (const [rel, wanted] of source) {
    const got = replica.get(rel);
    expect(got?.type, rel).toBe(wanted.type);
    expect(got?.sha256, rel).toBe(wanted.sha256);
    expect(got?.target, rel).toBe(wanted.target);
    if (wanted.type === 'file') {
      if (options.mtimeResolution === 's') {
        expect(Math.floor((got?.mtimeMs ?? 0) / 1000), rel).toBe(Math.floor(wanted.mtimeMs / 1000));
      } else {
        expect(Math.abs((got?.mtimeMs ?? 0) - wanted.mtimeMs), rel).toBeLessThan(1);
      }
      if (options.modes) expect(got?.mode, rel).toBe(wanted.mode);
    }
  }
}

/** Files (content as text) and empty folders (value null) below `root`. */
export async function writeTree(
  root: string,
  files: Record<string, string | null>,
  mtimeMs?: number,
): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, rel);
    if (content === null) {
      await mkdir(path, { recursive: true });
      continue;
    }
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    if (mtimeMs !== undefined) await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
  }
}

export async function makeLink(path: string, target: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await symlink(target, path);
}

/** An hour ago, in whole seconds: a stable mtime for files a test writes. */
export function anHourAgoMs(): number {
  return Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
}

export async function writeConfig(path: string, lines: string[]): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** Runs mirror-files with a HOME of its own; every run has a deadline. */
export function mirrorFiles(
  args: string[],
  home: string,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runCli('mirror-files', args, {
    env: { HOME: home, XDG_STATE_HOME: '', SSH_AUTH_SOCK: '' },
    ...(options.cwd ? { cwd: options.cwd } : {}),
    timeoutMs: options.timeoutMs ?? 30_000,
  });
}

export type MirrorEvent = Record<string, unknown> & { event: string; relPath: string; job: string };

/** The operation events (created, updated, removed, …) a run logged on its console, in order. */
export function events(result: CliResult): MirrorEvent[] {
  return eventsIn(result.stderr);
}

export function eventsIn(text: string): MirrorEvent[] {
  const names = new Set([
    'created',
    'updated',
    'copied',
    'removed',
    'backed_up',
    'folder_created',
    'folder_removed',
  ]);
  return jsonLines(text).filter((line): line is MirrorEvent => names.has(String(line.event)));
}

/** `event relPath` strings, sorted: easy to compare as a set. */
export function eventKeys(result: CliResult): string[] {
  return events(result)
    .map((line) => `${line.event} ${line.relPath}`)
    .sort();
}
