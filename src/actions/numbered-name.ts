import { posix } from 'node:path';
import { truncateUtf8 } from './truncate-utf8.js';

/** `dir/report.csv`, 2 → `dir/report (2).csv`: the name for a second file where one exists. */
export function numberedName(path: string, number: number): string {
  return withStemSuffix(path, ` (${number})`);
}

/** The longest file name most file systems take, in bytes. */
const MAX_NAME_BYTES = 255;

/**
 * `dir/report.csv`, `.2026-11-21T101500Z` → `dir/report.2026-11-21T101500Z.csv`. The
 * stem is shortened when the name would pass 255 bytes, so a long name can still be
 * numbered or kept beside its newer version.
 */
export function withStemSuffix(path: string, suffix: string): string {
  const dir = posix.dirname(path);
  const name = posix.basename(path);
  // A leading dot is part of the stem (".profile").
  const lead = name.startsWith('.') ? '.' : '';
  const body = name.slice(lead.length);
  const extension = extensionOf(body);
  const room = MAX_NAME_BYTES - Buffer.byteLength(`${lead}${suffix}${extension}`);
  const stem = truncateUtf8(body.slice(0, body.length - extension.length), Math.max(1, room));
  const renamed = `${lead}${stem}${suffix}${extension}`;
  return dir === '.' ? renamed : posix.join(dir, renamed);
}

/** Compression suffixes that belong with the extension before them: "data.tar.gz", "rows.csv.zst". */
const COMPRESSION_EXTENSION = /^\.(gz|bz2|xz|zst|lz|lz4|lzma|z|br|sz)$/i;
const LAST_EXTENSION = /(\.[A-Za-z0-9]{1,8})$/;

/** ".csv" of "report.final.csv", ".tar.gz" of "data.tar.gz", "" of "README". Never the whole name. */
function extensionOf(body: string): string {
  const last = LAST_EXTENSION.exec(body)?.[1];
  if (last === undefined || last.length >= body.length) return '';
  if (!COMPRESSION_EXTENSION.test(last)) return last;
  const rest = body.slice(0, body.length - last.length);
  const inner = LAST_EXTENSION.exec(rest)?.[1];
  return inner !== undefined && inner.length < rest.length ? `${inner}${last}` : last;
}

/** A timestamp usable in a file name: `2026-11-21T101500Z`. */
export function fileNameTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/:/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}
