/** `['sources', 1, 'port']` → `sources[1].port`, the form every config message uses. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? readableKey(String(part)) : `.${readableKey(String(part))}`;
  }
  return text === '' ? '(top level)' : text;
}

/** Spaces, control characters and invisible ones (a BOM, a zero-width space, a direction mark). */
const UNSEEN = /[\p{C}\p{Z}]/u;

/**
 * A key as it can be read on a terminal: one that is empty or holds a space or an
 * unseen character is quoted, and its unseen characters are escaped, so
 * `"\u{feff}sources"` does not print as a `sources` that looks right.
 */
function readableKey(key: string): string {
  if (key !== '' && !UNSEEN.test(key)) return key;
  const escaped = [...key]
    .map((char) => {
      if (char === '"' || char === '\\') return `\\${char}`;
      if (char !== ' ' && UNSEEN.test(char)) return `\\u{${(char.codePointAt(0) ?? 0).toString(16)}}`;
      return char;
    })
    .join('');
  return `"${escaped}"`;
}
