/**
 * The sha256 check: every tool must leave exactly the data set's files, byte for
 * byte. Also the warm-up read of a source tree before a timed run.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from './data-sets.js';

/** Files of this size or more are hashed as streams, smaller ones read whole. */
const STREAM_FROM_BYTES = 16 * 1024 * 1024;

export interface TreeCheck {
  ok: boolean;
  /** `same N files`, or the first differences. */
  detail: string;
}

/** Compares the regular files below `rootDir` with `expected` (links and folders are ignored). */
export async function checkTree(rootDir: string, expected: Manifest): Promise<TreeCheck> {
  const actual = await hashTree(rootDir);
  const problems: string[] = [];
  for (const [relPath, sha256] of expected.sha256ByPath) {
    const got = actual.get(relPath);
    if (got === undefined) problems.push(`missing ${relPath}`);
    else if (got !== sha256) problems.push(`different ${relPath}`);
  }
  for (const relPath of actual.keys()) {
    if (!expected.sha256ByPath.has(relPath)) problems.push(`extra ${relPath}`);
  }
  if (problems.length === 0) return { ok: true, detail: `same ${expected.sha256ByPath.size} files` };
  return {
    ok: false,
    detail: `${problems.length} differences, first: ${problems.slice(0, 3).join('; ')}`,
  };
}

/** The manifest of whatever is below `rootDir` now (e.g. a mirror's source after its changes). */
export async function manifestOf(rootDir: string): Promise<Manifest> {
  const sha256ByPath = await hashTree(rootDir);
  let totalBytes = 0;
  for (const relPath of sha256ByPath.keys()) totalBytes += (await stat(join(rootDir, relPath))).size;
  return { sha256ByPath, totalBytes };
}

/** relPath → sha256 of every regular file below `rootDir`; an absent root is empty. */
async function hashTree(rootDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const relPath of await listFiles(rootDir)) out.set(relPath, await hashFile(join(rootDir, relPath)));
  return out;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  // Small files read at once: 100,000 streams would cost the bench more than the tools it times.
  if (statSync(path).size < STREAM_FROM_BYTES) return hash.update(readFileSync(path)).digest('hex');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Regular files below `rootDir`, `/`-separated relative paths. */
export async function listFiles(rootDir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(rootDir, { recursive: true, withFileTypes: true });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(rootDir.length + 1));
}

/** Reads every file below `rootDir` once, so a timed run finds the source in the page cache. */
export async function warmRead(rootDir: string): Promise<void> {
  const entries = await readdir(rootDir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if (statSync(path).size < STREAM_FROM_BYTES) {
      readFileSync(path);
      continue;
    }
    for await (const _chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) {
      // Reading is the point.
    }
  }
}
