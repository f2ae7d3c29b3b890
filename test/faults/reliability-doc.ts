/**
 * docs/reliability.md, rendered from the scenario registry: the table cannot drift
 * from the tests, because `reliability-doc.test.ts` fails when the file differs from
 * this rendering. Regenerate with `npm run docs:reliability`.
 */
import type { Scenario } from './scenarios.js';

export const RELIABILITY_DOC_PATH = 'docs/reliability.md';

export function renderReliabilityDoc(scenarios: readonly Scenario[]): string {
  const rows = scenarios.map(
    (scenario) =>
      `| \`${scenario.id}\` | ${cell(scenario.done)} | ${cell(scenario.does)} | [${scenario.file}](../test/faults/${scenario.file}) |`,
  );
  return `${[
    '# Reliability: what the pipeline survives',
    '',
    '<!-- Generated from test/faults/scenarios.ts by `npm run docs:reliability`; test/faults/reliability-doc.test.ts fails when it is stale. Do not edit by hand. -->',
    '',
    'Every row below is a test in `test/faults/`, run by `npm test` (and so by `bash .ci/run`).',
    'Each runs the real commands (`fetch-files`, `copy-files`, `mirror-files`, built in `dist/`)',
    'against a real OpenSSH `sshd` on 127.0.0.1; where the network must misbehave, through a',
    'small TCP proxy (`test/support/fault-tcp-proxy.ts`) that cuts a connection after N bytes in',
    'either direction, stalls new connections, or freezes live ones.',
    '',
    'After every fault, and again at the end of every scenario, one checker',
    '(`test/faults/invariants.ts`) asserts the invariants of the design:',
    '',
    '- every remote original is present exactly once where the scenario expects it (incoming,',
    '  archive, destinations, replica), with its sha256, and nothing else is there;',
    '- no temporary (`.name….part`) is visible, and no half-written file under a real name;',
    '- nothing was deleted remotely unless incoming (or every destination) and the archive hold it;',
    '- nothing left incoming before every destination held it;',
    '- no secret — password, key passphrase, any line of the private key — appears in any file of',
    '  `log_dir` or in the captured stdout/stderr (every scenario logs in with an encrypted key',
    '  whose passphrase comes from the environment, so there is always something to look for);',
    '- and, where the scenario fails something on purpose: the exit code, and an error line with',
    '  its code that names the host (`user@host:port`) and/or the path and ends with what to do.',
    '',
    '| scenario | what is done to the pipeline | what the pipeline does | test |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    '## What the suite found',
    '',
    'Bugs each scenario found when it was written, and the fix:',
    '',
    ...scenarios
      .filter((scenario) => scenario.found !== undefined)
      .map((scenario) => `- \`${scenario.id}\`: ${cell(scenario.found ?? '')}`),
    '',
    '## Notes',
    '',
    '- **100,000 entries.** Fetching 100,000 files would take minutes of SFTP round trips and',
    '  prove nothing more about the listing, so the scenario lists them all twice — a `--dry-run`',
    '  and a real pass capped by `max_files_per_pass` — and fetches 300. Peak memory is the',
    "  kernel's VmHWM of the process, polled from `/proc`.",
    '- **Password logins and permissions** need a second system account (`useradd`, `chpasswd`),',
    '  so `permission-file`, `permission-folder` and the password half of `secrets-never-logged`',
    '  run as root only (CI runs as root) and are skipped, with the reason in their title,',
    '  otherwise.',
    '- **Mid-archive signals.** The archive copy of a 48 MiB file lasts a few tens of',
    '  milliseconds: the test watches the archive folder with inotify and stops the fetcher',
    '  (SIGSTOP) the instant the archive temporary appears, then sends SIGTERM or SIGKILL.',
    '- **Seeds.** The config fuzzer prints its seed; replay a failure with',
    '  `FAULTS_FUZZ_SEED=<seed> npx vitest run test/faults/config-fuzzer.test.ts`.',
    '',
  ].join('\n')}`;
}

/** One table cell: no line breaks, no bare pipes. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}
