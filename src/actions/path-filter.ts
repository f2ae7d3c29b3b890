import picomatch from 'picomatch';

export type PathFilter = (relPath: string) => boolean;

/**
 * include/exclude globs → a test on `/`-separated paths relative to the listed folder.
 * As in .gitignore, a pattern without `/` matches the file name at any depth; `**`
 * crosses folders. No include means every file. A path with a part starting with `.`
 * (a dotfile, or a file in a dot-folder such as a partner's `.upload/`) is included
 * only by a pattern that spells a dot part itself (`.done`, `**\/.*`, `.in/**`).
 * Exclude wins over include, and matches dot parts like any other. With `dotPaths`
 * (the mirror), dot parts are matched like any other part by include too.
 */
export function createPathFilter(
  include: readonly string[],
  exclude: readonly string[],
  options: { dotPaths?: boolean } = {},
): PathFilter {
  const matchExclude = exclude.length === 0 ? undefined : compile(exclude, true);
  if (options.dotPaths) {
    // A mirror copies dotfiles like any other file: `*` and `**` match dot parts too.
    const matchAny = include.length === 0 ? () => true : compile(include, true);
    return (relPath) => matchAny(relPath) && !matchExclude?.(relPath);
  }
  const matchInclude = include.length === 0 ? picomatch('**') : compile(include, false);
  const dotPatterns = include.filter((pattern) => pattern.split('/').some((part) => part.startsWith('.')));
  const matchDotInclude = dotPatterns.length === 0 ? undefined : compile(dotPatterns, true);
  return (relPath) => {
    const included = hasDotPart(relPath) ? (matchDotInclude?.(relPath) ?? false) : matchInclude(relPath);
    return included && !matchExclude?.(relPath);
  };
}

/** Whether any include pattern could match inside a dot-folder: if not, listings need not descend into them. */
export function includesDotPaths(include: readonly string[]): boolean {
  return include.some((pattern) => pattern.split('/').some((part) => part.startsWith('.')));
}

function hasDotPart(relPath: string): boolean {
  return relPath.startsWith('.') || relPath.includes('/.');
}

function compile(patterns: readonly string[], dot: boolean): (relPath: string) => boolean {
  const matchers = patterns.map((pattern) => {
    const anchored = pattern.startsWith('/') ? pattern.slice(1) : pattern;
    // A pattern without "/" is matched against the name alone, at any depth.
    return picomatch(anchored, { dot, basename: !pattern.includes('/') });
  });
  return (relPath) => matchers.some((matcher) => matcher(relPath));
}
