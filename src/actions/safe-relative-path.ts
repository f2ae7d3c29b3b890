import { posix } from 'node:path';

/**
 * Why a relative path from a listing may not be used to name a local file, or
 * undefined when it is safe: no `..` or `.` parts, not absolute, no empty parts, no
 * NUL or control characters (newlines included), no part longer than 255 bytes.
 */
export function unsafePathReason(relPath: string): string | undefined {
  if (relPath === '') return 'empty name';
  if (relPath.startsWith('/')) return 'absolute path';
  // eslint-disable-next-line no-control-regex -- control characters are what we look for.
  if (/[\u0000-\u001f\u007f]/.test(relPath)) return 'control character (newline, NUL, …) in the name';
  for (const part of relPath.split('/')) {
    if (part === '' || part === '.' || part === '..') return `"${part}" as a path part`;
    if (Buffer.byteLength(part) > 255) return 'a name longer than 255 bytes';
  }
  return undefined;
}

/**
 * `root` joined with a relative path that has passed `unsafePathReason`, checked once
 * more after joining: the result is always inside `root`.
 */
export function joinInside(root: string, relPath: string): string {
  const joined = posix.join(root, relPath);
  const rel = posix.relative(root, joined);
  if (rel === '' || rel.startsWith('..') || posix.isAbsolute(rel)) {
    throw new Error(`path ${JSON.stringify(relPath)} escapes ${root}`);
  }
  return joined;
}
