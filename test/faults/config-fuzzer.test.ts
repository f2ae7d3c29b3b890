/**
 * A seeded config fuzzer. Every shipped config (etc/*.yml, etc/examples/*.yml) is
 * mutated a few hundred times — keys deleted, duplicated, unknown; values changed
 * in type, emptied, swapped, made huge, turned to garbage Unicode or `${UNSET}`;
 * lines re-indented, the file truncated — and loaded in-process: each mutant either
 * loads, or fails with E_CONFIG whose every problem line names the file and a key
 * path (or a line and column), without a stack trace. A seeded sample goes through
 * the real CLI with `--dry-run`: exit 2 with one problem per line, or a run that is
 * not an internal error. Replay a failure with FAULTS_FUZZ_SEED=<seed>.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CORE_SCHEMA, dump, load, mergeTag } from 'js-yaml';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CopierConfig, Env, FetcherConfig, MirrorConfig } from '../../src/config/index.js';
import { loadCopierConfig, loadFetcherConfig, loadMirrorConfig } from '../../src/config/index.js';
import { SyncError } from '../../src/errors/index.js';
import { seededRandom } from '../support/copier-scenario.js';
import { type CliCommand, PROJECT_ROOT, runCli } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { expectNoStackTrace } from './invariants.js';
import { scenarioTitle } from './scenarios.js';

const SEED = Number(process.env.FAULTS_FUZZ_SEED ?? 20_261_121);
const MUTANTS_PER_CONFIG = 500;
const CLI_SAMPLE = 30;

type Kind = 'fetcher' | 'copier' | 'mirror';

interface BaseConfig {
  name: string;
  kind: Kind;
  text: string;
}

const COMMAND_OF: Record<Kind, CliCommand> = {
  fetcher: 'fetch-files',
  copier: 'copy-files',
  mirror: 'mirror-files',
};

/** What the shipped configs read from the environment, so each loads unmutated; HOME is set per run. */
const ENV: Record<string, string> = {
  KEY_PASSPHRASE: 'fuzz-passphrase',
  PARTNER_B_PASSWORD: 'fuzz-password',
  PARTNER_PASSWORD: 'fuzz-password',
};

function kindOf(name: string): Kind {
  if (name.includes('fetcher')) return 'fetcher';
  if (name.includes('copier')) return 'copier';
  return 'mirror';
}

/**
 * The shipped configs, made safe to run: every host is 127.0.0.1 on port 9 (nothing
 * listens: a valid mutant fails fast to connect), and absolute local folders
 * (/srv/…, /var/…) move below the mutant's own folder.
 */
function baseConfigs(): BaseConfig[] {
  const etc = join(PROJECT_ROOT, 'etc');
  const files = [
    ...readdirSync(etc)
      .filter((name) => name.endsWith('.yml'))
      .map((name) => join(etc, name)),
    ...readdirSync(join(etc, 'examples'))
      .filter((name) => name.endsWith('.yml'))
      .map((name) => join(etc, 'examples', name)),
  ];
  return files.map((path) => {
    const name = relative(PROJECT_ROOT, path);
    const text = readFileSync(path, 'utf8')
      .replace(/(sftp:\/\/[^@\s]+@)[^/\s:]+(:\d+)?/g, '$1127.0.0.1:9')
      .replace(/^(\s*(?:- )?host:\s*)\S+/gm, '$1127.0.0.1')
      .replace(/^(\s*(?:- )?port:\s*)\d+/gm, '$19')
      .replace(/(:\s+["']?)\/(srv|var)\//g, '$1local/$2/');
    return { name, kind: kindOf(name), text };
  });
}

// ---- mutations ----

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

type Tree = Record<string, unknown> | unknown[];

/** Every container in the tree with the keys (or indexes) it holds, for picking a place to mutate. */
function places(node: unknown, out: { parent: Tree; key: string | number }[] = []): typeof out {
  if (Array.isArray(node)) {
    node.forEach((child, index) => {
      out.push({ parent: node, key: index });
      places(child, out);
    });
  } else if (node !== null && typeof node === 'object') {
    for (const [key, child] of Object.entries(node)) {
      out.push({ parent: node as Record<string, unknown>, key });
      places(child, out);
    }
  }
  return out;
}

function getAt(place: { parent: Tree; key: string | number }): unknown {
  return (place.parent as Record<string | number, unknown>)[place.key];
}

function setAt(place: { parent: Tree; key: string | number }, value: unknown): void {
  (place.parent as Record<string | number, unknown>)[place.key] = value;
}

function garbage(random: Random): string {
  const pools = [
    'é中文🙂‮‏\u200b\u00a0',
    '\t\u0001\u0007\u001b[31m',
    '${}{}[]:,#&*!|>%@`"\'\\',
    'ǅǈǋ𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
    '../../etc/passwd',
  ];
  let out = '';
  const length = 1 + Math.floor(random() * 24);
  for (let index = 0; index < length; index += 1) out += pick(random, [...pick(random, pools)]);
  return out;
}

const VALUES: ((random: Random) => unknown)[] = [
  () => '',
  () => null,
  () => [],
  () => ({}),
  () => true,
  () => 0,
  () => -1,
  () => 1e308,
  () => 2 ** 64,
  () => Number.MAX_SAFE_INTEGER + 2,
  () => 0.000001,
  () => Number.NaN,
  () => Number.POSITIVE_INFINITY,
  () => '99999999999999999999GiB',
  () => '1e9999s',
  () => '-5s',
  () => '0x1F',
  () => '${FSL_FUZZ_UNSET}',
  () => 'prefix ${FSL_FUZZ_UNSET:-} and ${FSL_FUZZ_ALSO_UNSET}',
  () => '${not a placeholder',
  () => '$${literal}',
  () => '~',
  () => '/',
  () => 'sftp://',
  () => 'sftp://u@:0/x',
  () => ['*.csv', 42, null],
  () => ({ nested: { deeper: [1, { x: 'y' }] } }),
  garbage,
];

const TREE_MUTATIONS: Record<string, (tree: Record<string, unknown>, random: Random) => void> = {
  'delete a key': (tree, random) => {
    const place = pick(random, places(tree));
    if (Array.isArray(place.parent)) place.parent.splice(Number(place.key), 1);
    else delete place.parent[place.key as string];
  },
  'unknown key': (tree, random) => {
    const containers = places(tree)
      .map(getAt)
      .filter((node) => node !== null && typeof node === 'object' && !Array.isArray(node));
    const target = (containers.length > 0 ? pick(random, containers) : tree) as Record<string, unknown>;
    target[
      pick(random, ['hots', 'remote-dir', 'Sources', 'include ', garbage(random), '__proto__', 'constructor'])
    ] = pick(random, VALUES)(random);
  },
  'change a type': (tree, random) => {
    const place = pick(random, places(tree));
    const value = getAt(place);
    setAt(
      place,
      typeof value === 'number'
        ? String(value)
        : typeof value === 'string'
          ? pick(random, [Number(value.length), [value], { value }, value.length > 0])
          : Array.isArray(value)
            ? value.join(',')
            : value !== null && typeof value === 'object'
              ? Object.keys(value)
              : pick(random, VALUES)(random),
    );
  },
  'number to string': (tree, random) => {
    const numbers = places(tree).filter((place) => typeof getAt(place) === 'number');
    if (numbers.length === 0) return;
    const place = pick(random, numbers);
    setAt(
      place,
      pick(random, [`${String(getAt(place))}`, `${String(getAt(place))} MiB`, ` ${String(getAt(place))}`]),
    );
  },
  'garbage unicode': (tree, random) => {
    const place = pick(random, places(tree));
    setAt(place, garbage(random));
  },
  'swap values': (tree, random) => {
    const all = places(tree);
    const first = pick(random, all);
    const second = pick(random, all);
    const value = getAt(first);
    setAt(first, getAt(second));
    setAt(second, value);
  },
  'empty value': (tree, random) => {
    setAt(pick(random, places(tree)), pick(random, ['', null, [], {}]));
  },
  'huge number': (tree, random) => {
    setAt(pick(random, places(tree)), pick(random, [1e308, 2 ** 64, -(2 ** 63), 1e-300, Number.NaN]));
  },
  'unset variable': (tree, random) => {
    const strings = places(tree).filter((place) => typeof getAt(place) === 'string');
    if (strings.length === 0) return;
    const place = pick(random, strings);
    setAt(place, `${String(getAt(place))}\${FSL_FUZZ_UNSET_${Math.floor(random() * 9)}}`);
  },
  'any value anywhere': (tree, random) => {
    setAt(pick(random, places(tree)), pick(random, VALUES)(random));
  },
};

const TEXT_MUTATIONS: Record<string, (text: string, random: Random) => string> = {
  'duplicate a key line': (text, random) => {
    const lines = text.split('\n');
    const keyed = lines
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => /^\s*[\w-]+:/.test(line));
    if (keyed.length === 0) return text;
    const { line, index } = pick(random, keyed);
    lines.splice(index + 1, 0, line);
    return lines.join('\n');
  },
  'bad indent': (text, random) => {
    const lines = text.split('\n');
    const index = Math.floor(random() * lines.length);
    const line = lines[index] ?? '';
    lines[index] =
      random() < 0.5 ? `${' '.repeat(1 + Math.floor(random() * 3))}${line}` : line.replace(/^ {1,3}/, '');
    return lines.join('\n');
  },
  'truncate the file': (text, random) => text.slice(0, Math.floor(random() * text.length)),
  'delete a line': (text, random) => {
    const lines = text.split('\n');
    lines.splice(Math.floor(random() * lines.length), 1);
    return lines.join('\n');
  },
  'insert garbage': (text, random) => {
    const at = Math.floor(random() * text.length);
    return `${text.slice(0, at)}${pick(random, ['\t', '\u0000', '\ufeff', ': :', '- ', '"', '&x *y', '<<: 5', garbage(random)])}${text.slice(at)}`;
  },
  'alias and anchor mischief': (text, random) =>
    `${text}\n${pick(random, ['extra: &a [*a]', 'more: *nowhere', '<<: [1, 2]', 'x: !!binary AAAA', 'y: !custom 1'])}\n`,
};

/** One mutant: 1–3 mutations, tree or text, applied in order. The names say what was done. */
function mutate(base: BaseConfig, random: Random): { text: string; mutations: string[] } {
  let text = base.text;
  const mutations: string[] = [];
  const count = 1 + Math.floor(random() * 3);
  for (let index = 0; index < count; index += 1) {
    if (random() < 0.65) {
      let tree: unknown;
      try {
        tree = load(text, { schema: CORE_SCHEMA.withTags(mergeTag) });
      } catch {
        tree = undefined;
      }
      if (tree === null || typeof tree !== 'object' || Array.isArray(tree)) continue;
      const [name, mutation] = pick(random, Object.entries(TREE_MUTATIONS));
      try {
        mutation(tree as Record<string, unknown>, random);
        text = dump(tree, { skipInvalid: true, lineWidth: -1 });
        mutations.push(name);
      } catch {
        // A tree js-yaml cannot write back (e.g. a key deleted from an anchor's target): skip it.
      }
    } else {
      const [name, mutation] = pick(random, Object.entries(TEXT_MUTATIONS));
      text = mutation(text, random);
      mutations.push(name);
    }
  }
  return { text, mutations };
}

const LOADERS: Record<
  Kind,
  (path: string, env: Env) => Promise<FetcherConfig | CopierConfig | MirrorConfig>
> = {
  fetcher: loadFetcherConfig,
  copier: loadCopierConfig,
  mirror: loadMirrorConfig,
};

/** The local folders a loaded config would write to. */
function localPathsOf(config: FetcherConfig | CopierConfig | MirrorConfig): string[] {
  const paths = [config.stateDir, config.logDir];
  if (config.kind === 'fetcher') paths.push(config.incoming, ...(config.archive ? [config.archive] : []));
  if (config.kind === 'copier') {
    paths.push(config.incoming, ...(config.doneDir ? [config.doneDir] : []));
    for (const destination of config.destinations)
      if (destination.kind === 'local') paths.push(destination.path);
  }
  if (config.kind === 'mirror') {
    for (const job of config.jobs) {
      for (const end of [job.source, job.replica]) if (end.kind === 'local') paths.push(end.path);
      if (job.backupDir !== undefined && job.replica.kind === 'local') paths.push(job.backupDir);
    }
  }
  return paths;
}

interface Outcome {
  name: string;
  kind: Kind;
  path: string;
  mutations: string[];
  loaded: boolean;
  safeToRun: boolean;
}

describe('faults: config fuzzer', () => {
  let temp: TempDir;
  const outcomes: Outcome[] = [];

  beforeAll(async () => {
    temp = await makeTempDir('faults-fuzz-');
    // The configs name ~/.ssh/id_ed25519: a home whose key file exists (it is never used to log in).
    ENV.HOME = join(temp.path, 'home');
    await mkdir(join(ENV.HOME, '.ssh'), { recursive: true });
    await writeFile(join(ENV.HOME, '.ssh', 'id_ed25519'), 'not a real key\n', { mode: 0o600 });
    await writeFile(join(ENV.HOME, '.ssh', 'known_hosts'), '', { mode: 0o600 });
  });
  afterAll(async () => {
    await temp?.remove();
  });

  it(scenarioTitle('config-fuzzer'), { timeout: 120_000 }, async () => {
    const random = seededRandom(SEED);
    const bases = baseConfigs();
    expect(bases.length).toBeGreaterThanOrEqual(6);
    // Unmutated, every (made safe) config loads: the fuzzer starts from valid ground.
    for (const base of bases) {
      const path = join(temp.path, 'base', base.name);
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, base.text);
      await expect(LOADERS[base.kind](path, ENV), base.name).resolves.toBeDefined();
    }
    await checkKnownMutants(bases, join(temp.path, 'known'));

    const counts = { loaded: 0, refused: 0, problemLines: 0 };
    for (const base of bases) {
      for (let index = 0; index < MUTANTS_PER_CONFIG; index += 1) {
        const { text, mutations } = mutate(base, random);
        const dir = join(temp.path, 'mutants', `${base.name.replace(/\W+/g, '-')}-${index}`);
        const path = join(dir, 'config.yml');
        await mkdir(dir, { recursive: true });
        await writeFile(path, text);
        const context = `FAULTS_FUZZ_SEED=${SEED} ${base.name} #${index} (${mutations.join(', ')}): ${path}\n${text}`;
        let loaded: FetcherConfig | CopierConfig | MirrorConfig | undefined;
        try {
          loaded = await LOADERS[base.kind](path, ENV);
        } catch (err) {
          expect(err, context).toBeInstanceOf(SyncError);
          const error = err as SyncError;
          expect(error.code, `${context}\n${error.message}`).toBe('E_CONFIG');
          const problems = error.context.problems;
          expect(Array.isArray(problems) && problems.length > 0, context).toBe(true);
          for (const line of problems as unknown[]) {
            expect(typeof line, context).toBe('string');
            expectProblemLine(String(line), path, context);
          }
          counts.refused += 1;
          counts.problemLines += (problems as unknown[]).length;
        }
        if (loaded) counts.loaded += 1;
        const safeToRun =
          loaded !== undefined && localPathsOf(loaded).every((local) => local.startsWith(`${dir}/`));
        outcomes.push({
          name: base.name,
          kind: base.kind,
          path,
          mutations,
          loaded: loaded !== undefined,
          safeToRun,
        });
      }
    }
    console.log(
      `config fuzzer (FAULTS_FUZZ_SEED=${SEED}): ${outcomes.length} mutants, ${counts.loaded} loaded, ` +
        `${counts.refused} refused with ${counts.problemLines} problem lines`,
    );
    expect(counts.refused).toBeGreaterThan(outcomes.length / 2);
    expect(counts.loaded).toBeGreaterThan(0);

    // The real CLI on a seeded sample: mostly refused mutants, a few that load.
    const refused = outcomes.filter((outcome) => !outcome.loaded);
    const runnable = outcomes.filter((outcome) => outcome.safeToRun);
    const sample = [
      ...Array.from({ length: CLI_SAMPLE - 6 }, () => pick(random, refused)),
      ...Array.from({ length: Math.min(6, runnable.length) }, () => pick(random, runnable)),
    ];
    const limit = pLimit(2);
    await Promise.all(
      sample.map((outcome) =>
        limit(async () => {
          const result = await runCli(COMMAND_OF[outcome.kind], ['--config', outcome.path, '--dry-run'], {
            env: { ...ENV },
            timeoutMs: 30_000,
          });
          const context = `FAULTS_FUZZ_SEED=${SEED} ${outcome.name} (${outcome.mutations.join(', ')}): ${outcome.path}\nexit ${result.code}\n${result.stderr}`;
          expectNoStackTrace(result.stderr, context);
          expectNoStackTrace(result.stdout, context);
          if (!outcome.loaded) {
            expect(result.code, context).toBe(2);
            const lines = result.stderr.trimEnd().split('\n');
            const [first, ...problems] = lines;
            if (problems.length > 0) {
              expect(first, context).toMatch(/^[\w-]+: .*: \d+ problems? in the configuration:$/);
              for (const line of problems) {
                expect(line.startsWith('  '), context).toBe(true);
                expectProblemLine(line.slice(2), outcome.path, context);
              }
            } else {
              expect(first, context).toMatch(new RegExp(`^[\\w-]+: E_CONFIG: ${escapeRegExp(outcome.path)}`));
            }
          } else {
            // A valid config: the dry run may fail to reach 127.0.0.1:9, but never as a bug.
            expect([0, 1], context).toContain(result.code);
          }
        }),
      ),
    );
  });
});

/**
 * Mutants that once broke the loader or the CLI, kept as fixed cases whatever the seed:
 * an alias that contains itself (stack overflow, exit 70), an invisible character in
 * a key (printed as a correct-looking key), and a dry run of a config with a
 * `schedule` (it waited for the next cron slot before planning).
 */
async function checkKnownMutants(bases: readonly BaseConfig[], dir: string): Promise<void> {
  const fetcher = bases.find((base) => base.name === join('etc', 'fetcher.yml'));
  const scheduled = bases.find((base) => base.text.includes('\nschedule:'));
  if (!fetcher || !scheduled) throw new Error('etc/fetcher.yml or a config with a schedule is missing');
  await mkdir(dir, { recursive: true });
  const refusedWith = async (name: string, text: string, line: RegExp): Promise<void> => {
    const path = join(dir, `${name}.yml`);
    await writeFile(path, text);
    const error = await loadFetcherConfig(path, ENV).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error, name).toBeInstanceOf(SyncError);
    expect((error as SyncError).context.problems, name).toEqual([expect.stringMatching(line)]);
  };
  await refusedWith(
    'alias-loop',
    `${fetcher.text}\nextra: &a [1, *a]\n`,
    /: extra\[1\]: a YAML alias refers to a node that contains it/,
  );
  await refusedWith(
    'invisible-key',
    fetcher.text.replace(/^sources:/m, '\ufeffsources:'),
    /: "\\u\{feff\}sources": unknown key; did you mean "sources"\?$/,
  );
  const path = join(dir, 'scheduled.yml');
  await writeFile(path, scheduled.text);
  const dryRun = await runCli(COMMAND_OF[scheduled.kind], ['--config', path, '--dry-run'], {
    env: { ...ENV },
    timeoutMs: 20_000,
  });
  expect([0, 1], `${scheduled.name} --dry-run\n${dryRun.stderr}`).toContain(dryRun.code);
}

/** `FILE: key.path: message` or `FILE:line:col: message`, on one line. */
function expectProblemLine(line: string, path: string, context: string): void {
  expect(line.includes('\n'), `${context}\none line: ${line}`).toBe(false);
  expect(line, context).not.toMatch(/\bat .+\.(?:js|ts):\d+/);
  const rest = line.startsWith(`${path}: `) ? line.slice(path.length + 2) : undefined;
  const position = new RegExp(`^${escapeRegExp(path)}:\\d+:\\d+: \\S`).test(line);
  expect(rest !== undefined || position, `${context}\nproblem line names the file: ${line}`).toBe(true);
  if (rest !== undefined) expect(rest, `${context}\nproblem line names a key: ${line}`).toMatch(/^\S.*?: \S/);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
