/**
 * The registry, the tests and docs/reliability.md say the same thing: every scenario
 * is run by exactly one test, in the file the registry names, and the doc is exactly
 * what the registry renders to.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../support/run-cli.js';
import { RELIABILITY_DOC_PATH, renderReliabilityDoc } from './reliability-doc.js';
import { SCENARIOS } from './scenarios.js';

const FAULTS_DIR = join(PROJECT_ROOT, 'test', 'faults');

describe('faults: the reliability table', () => {
  it('every scenario is run by exactly one test, in the file the registry names', () => {
    const usedIn = new Map<string, string[]>();
    for (const file of readdirSync(FAULTS_DIR).filter((name) => name.endsWith('.test.ts'))) {
      const text = readFileSync(join(FAULTS_DIR, file), 'utf8');
      for (const match of text.matchAll(/scenarioTitle\('([^']+)'\)/g)) {
        const id = match[1] ?? '';
        usedIn.set(id, [...(usedIn.get(id) ?? []), file]);
      }
    }
    const ids = SCENARIOS.map((scenario) => scenario.id);
    expect(new Set(ids).size, 'ids are unique').toBe(ids.length);
    expect([...usedIn.keys()].sort()).toEqual([...ids].sort());
    for (const scenario of SCENARIOS) expect(usedIn.get(scenario.id), scenario.id).toEqual([scenario.file]);
  });

  it(`${RELIABILITY_DOC_PATH} is the rendering of the registry (else run: npm run docs:reliability)`, () => {
    const onDisk = readFileSync(join(PROJECT_ROOT, RELIABILITY_DOC_PATH), 'utf8');
    expect(onDisk).toBe(renderReliabilityDoc(SCENARIOS));
    for (const scenario of SCENARIOS) expect(onDisk).toContain(`| \`${scenario.id}\` |`);
  });
});
