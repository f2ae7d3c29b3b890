/** docs/configuration.md documents every key the schemas accept, each in a table row of its own. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copierKeys, fetcherKeys, mirrorKeys } from '../../../src/config/index.js';

const DOCS = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'configuration.md'), 'utf8');

/** Keys that have a row: `| \`key\` | type | default | meaning |`. */
const documented = new Set([...DOCS.matchAll(/^\| `([a-z_]+)` \|/gm)].map((match) => match[1]));

describe('docs/configuration.md', () => {
  it.each([
    ['fetcher', fetcherKeys],
    ['copier', copierKeys],
    ['mirror', mirrorKeys],
  ] as const)('has a row for every %s key', (_kind, catalog) => {
    const keys = [...new Set(Object.values(catalog).flat())];
    expect(keys.filter((key) => !documented.has(key))).toEqual([]);
  });

  it('documents no key the schemas do not accept', () => {
    const known = new Set(
      [...Object.values(fetcherKeys), ...Object.values(copierKeys), ...Object.values(mirrorKeys)].flat(),
    );
    expect([...documented].filter((key) => !known.has(key as string))).toEqual([]);
  });

  it('states the rules a user relies on', () => {
    for (const phrase of [
      'relative to the folder of the config file',
      '`${NAME:-default}`',
      '`$${`',
      'Unknown keys are errors',
      '`{source}/{path}`',
      'matches the file name at any depth',
      '`500ms`',
      '`512KiB`',
    ]) {
      expect(DOCS).toContain(phrase);
    }
    for (const placeholder of ['{source}', '{path}', '{dir}', '{name}', '{date}'])
      expect(DOCS).toContain(`| \`${placeholder}\` |`);
  });
});
