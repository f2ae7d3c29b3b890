import { posix } from 'node:path';

export interface LayoutValues {
  source: string;
  /** Path relative to the listed folder, `/`-separated. */
  relPath: string;
  /** Time of the fetch, for `{date}` (UTC, YYYY-MM-DD). */
  date: Date;
}

/**
 * `{source}/{path}` → `partner-a/sub/report.csv`. Placeholders: {source}, {path},
 * {dir} (the folder part of path, empty at the top), {name}, {date}. Empty parts
 * from an empty {dir} are dropped. The config rules have already refused unknown
 * placeholders, leading "/" and "..".
 */
export function renderLayout(layout: string, values: LayoutValues): string {
  const dir = posix.dirname(values.relPath);
  const rendered = layout.replace(/\{(source|path|dir|name|date)\}/g, (_, key: string) => {
    switch (key) {
      case 'source':
        return values.source;
      case 'path':
        return values.relPath;
      case 'dir':
        return dir === '.' ? '' : dir;
      case 'name':
        return posix.basename(values.relPath);
      default:
        return values.date.toISOString().slice(0, 10);
    }
  });
  return rendered
    .split('/')
    .filter((part) => part !== '')
    .join('/');
}
