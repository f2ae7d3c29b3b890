/**
 * `npm run docs:reliability`: writes docs/reliability.md from the fault scenarios
 * registry (test/faults/scenarios.ts). The fault suite fails while the file is stale.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RELIABILITY_DOC_PATH, renderReliabilityDoc } from '../test/faults/reliability-doc.js';
import { SCENARIOS } from '../test/faults/scenarios.js';

const path = join(import.meta.dirname, '..', RELIABILITY_DOC_PATH);
writeFileSync(path, renderReliabilityDoc(SCENARIOS));
console.log(`wrote ${path} (${SCENARIOS.length} scenarios)`);
