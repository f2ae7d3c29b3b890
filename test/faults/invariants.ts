/**
 * The invariants of DESIGN.md as one check, called at the end of every fault
 * scenario (and after each fault where it matters): every original present once
 * where the scenario expects it, with its sha256; nothing half-written visible under
 * a real name; no temporary left; nothing deleted remotely without its local
 * copies; nothing removed from incoming before every destination holds it; no
 * secret in any log file or console output. Plus the shape of an operator's error:
 * a code, the host and/or path, and a hint.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { hashTree, listFiles, listTemporaries } from '../support/fetcher-scenario.js';

/** `all`: exactly the originals; `some`: only originals, whole, each under its own name; `none`: empty. */
export type Presence = 'all' | 'some' | 'none';

export interface Place {
  dir: string;
  expect: Presence;
  /**
   * A destination must hold every file that left incoming (default true); false for
   * one the scenario itself emptied (an operator's `rm -rf`).
   */
  holdsReleased?: boolean;
}

export interface InvariantSpec {
  /** What the test is at, for messages (seed, pass, kill number). */
  context: string;
  /** relPath → sha256 of every file the partner offered. */
  originals: ReadonlyMap<string, string>;
  /** The remote folder the originals came from; a file gone from it must be safe locally. */
  remoteDir?: string;
  /** Where the source's files land (incoming/<source>). */
  incoming?: Place;
  archive?: Place;
  destinations?: readonly Place[];
  /**
   * A file that left incoming must be in every destination (the copier's rule). Off for
   * scenarios without a copier, where incoming is the end of the line.
   */
  copierRan?: boolean;
  /** Temporaries may be left (right after a kill); otherwise none may be visible anywhere. */
  allowTemporaries?: boolean;
  /** Secret values to grep for, and where. */
  secrets?: readonly string[];
  logDirs?: readonly string[];
  outputs?: readonly string[];
}

export async function checkInvariants(spec: InvariantSpec): Promise<void> {
  const { context, originals } = spec;
  const places = [spec.incoming, spec.archive, ...(spec.destinations ?? [])].filter(
    (place): place is Place => place !== undefined,
  );
  const trees = new Map<string, Map<string, string>>();
  for (const place of places) trees.set(place.dir, await hashTree(place.dir));

  for (const place of places) {
    const tree = trees.get(place.dir) ?? new Map<string, string>();
    for (const [relPath, sha256] of tree) {
      if (isTemporaryPath(relPath)) continue;
      expect(originals.has(relPath), `${context}: ${place.dir}/${relPath} is not one of the originals`).toBe(
        true,
      );
      expect(sha256, `${context}: ${place.dir}/${relPath} is whole (sha256)`).toBe(originals.get(relPath));
    }
    const real = [...tree.keys()].filter((relPath) => !isTemporaryPath(relPath)).sort();
    if (place.expect === 'all')
      expect(real, `${context}: ${place.dir} holds every original once`).toEqual(
        [...originals.keys()].sort(),
      );
    if (place.expect === 'none') expect(real, `${context}: ${place.dir} is empty`).toEqual([]);
  }

  if (spec.remoteDir !== undefined) {
    const remote = new Set(await listFiles(spec.remoteDir));
    const incoming = spec.incoming ? trees.get(spec.incoming.dir) : undefined;
    const archive = spec.archive ? trees.get(spec.archive.dir) : undefined;
    const destinations = (spec.destinations ?? []).map((place) => trees.get(place.dir));
    for (const [relPath, sha256] of originals) {
      if (remote.has(relPath)) continue;
      if (archive)
        expect(archive.get(relPath), `${context}: ${relPath} gone remotely, archive copy`).toBe(sha256);
      const inIncoming = incoming?.get(relPath) === sha256;
      const inEveryDestination =
        destinations.length > 0 && destinations.every((tree) => tree?.get(relPath) === sha256);
      expect(
        inIncoming || inEveryDestination,
        `${context}: ${relPath} gone remotely is in incoming or in every destination`,
      ).toBe(true);
    }
  }

  if (spec.copierRan && spec.incoming) {
    const incoming = trees.get(spec.incoming.dir) ?? new Map<string, string>();
    for (const [relPath, sha256] of originals) {
      if (incoming.has(relPath)) continue;
      for (const place of spec.destinations ?? []) {
        if (place.holdsReleased === false) continue;
        expect(
          trees.get(place.dir)?.get(relPath),
          `${context}: ${relPath} left incoming, so ${place.dir} must hold it`,
        ).toBe(sha256);
      }
    }
  }

  if (!spec.allowTemporaries) {
    expect(await listTemporaries(...places.map((place) => place.dir)), `${context}: temporaries`).toEqual([]);
  }

  if (spec.secrets && spec.secrets.length > 0) {
    await checkNoSecrets(spec.secrets, spec.logDirs ?? [], spec.outputs ?? [], context);
  }
}

function isTemporaryPath(relPath: string): boolean {
  const name = relPath.split('/').at(-1) ?? '';
  return name.startsWith('.') && name.endsWith('.part');
}

/** Every file below each log folder, and every captured output: none may hold a secret, raw or JSON-escaped. */
export async function checkNoSecrets(
  secrets: readonly string[],
  logDirs: readonly string[],
  outputs: readonly string[],
  context: string,
): Promise<void> {
  const texts: { where: string; text: string }[] = outputs.map((text, index) => ({
    where: `output ${index}`,
    text,
  }));
  let logFiles = 0;
  for (const dir of logDirs) {
    const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
    for (const name of names) {
      const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      logFiles += 1;
      texts.push({ where: join(dir, name), text });
    }
  }
  if (logDirs.length > 0)
    expect(logFiles, `${context}: log files to grep in ${logDirs.join(', ')}`).toBeGreaterThan(0);
  for (const secret of secrets) {
    const forms = new Set([secret, JSON.stringify(secret).slice(1, -1)]);
    for (const { where, text } of texts) {
      for (const form of forms) {
        expect(text.includes(form), `${context}: a secret (${secret.slice(0, 4)}…) appears in ${where}`).toBe(
          false,
        );
      }
    }
  }
}

export interface ErrorLineExpectation {
  code: string;
  /** `user@host:port` the message must name. */
  host?: string;
  /** A path the message must name. */
  path?: string;
}

/**
 * The error lines (level 50) carrying `err.code`: at least one, and each names the host
 * and/or the path in its message and ends with a hint (the ` — ` part of the one-line
 * format). Warnings with that code (retry notices) must name the host or path too.
 */
export function expectErrorLines(
  logs: readonly Record<string, unknown>[],
  expectation: ErrorLineExpectation,
  context = '',
): Record<string, unknown>[] {
  const withCode = logs.filter(
    (line) => (line.err as { code?: unknown } | undefined)?.code === expectation.code,
  );
  const errors = withCode.filter((line) => typeof line.level === 'number' && line.level >= 50);
  expect(errors.length, `${context}: error lines with err.code ${expectation.code}`).toBeGreaterThan(0);
  for (const line of withCode) {
    const err = line.err as { hint?: unknown };
    const text = String(line.msg);
    if (expectation.host !== undefined)
      expect(text, `${context}: names the host`).toContain(expectation.host);
    if (expectation.path !== undefined)
      expect(text, `${context}: names the path`).toContain(expectation.path);
    if (!errors.includes(line)) continue;
    expect(typeof err.hint === 'string' && err.hint.length > 0, `${context}: has a hint: ${text}`).toBe(true);
    expect(text, `${context}: the one-line form carries the hint`).toContain(` — ${String(err.hint)}`);
  }
  return errors;
}

/** No line of console output is a stack frame. */
export function expectNoStackTrace(text: string, context = ''): void {
  expect(text, `${context}: a stack trace`).not.toMatch(/^\s+at .+[(:]\d+/m);
}
