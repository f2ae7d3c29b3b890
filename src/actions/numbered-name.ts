import { posix } from 'node:path';

/** `dir/report.csv`, 2 → `dir/report (2).csv`: the name for a second file where one exists. */
export function numberedName(path: string, number: number): string {
  return withStemSuffix(path, ` (${number})`);
}

/** `dir/report.csv`, `.2026-11-21T101500Z` → `dir/report.2026-11-21T101500Z.csv`. */
export function withStemSuffix(path: string, suffix: string): string {
  const dir = posix.dirname(path);
  const name = posix.basename(path);
  // A leading dot is part of the stem (".profile"), and "archive.tar.gz" keeps ".tar.gz" together.
  const match = /^(.+?)((?:\.[A-Za-z0-9]{1,8}){0,2})$/.exec(name.startsWith('.') ? name.slice(1) : name);
  const lead = name.startsWith('.') ? '.' : '';
  const stem = match?.[1] ?? name;
  const extension = match?.[2] ?? '';
  const renamed = `${lead}${stem}${suffix}${extension}`;
  return dir === '.' ? renamed : posix.join(dir, renamed);
}

/** A timestamp usable in a file name: `2026-11-21T101500Z`. */
export function fileNameTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/:/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}
