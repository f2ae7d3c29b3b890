import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CORE_SCHEMA, load, mergeTag, YAMLException } from 'js-yaml';
import type { z } from 'zod';
import { type ErrorContext, SyncError } from '../errors/index.js';
import type { CopierConfig, FetcherConfig, MirrorConfig } from './config-types.js';
import { copierKeys, copierSchema } from './copier-schema.js';
import { fetcherKeys, fetcherSchema } from './fetcher-schema.js';
import { findAliasLoop } from './find-alias-loop.js';
import { interpolateEnv } from './interpolate-env.js';
import { formatKeyPath } from './key-path.js';
import { mirrorRules } from './mirror-rules.js';
import { mirrorKeys, mirrorSchema } from './mirror-schema.js';
import type { LoadContext } from './schema-parts.js';
import { type ConfigProblem, copierRules, fetcherRules, MISSING } from './semantic-rules.js';
import { suggestKey } from './suggest-key.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Valid keys of each mapping, by key path pattern (`*` for a list index), for typo suggestions. */
export type KeyCatalog = Readonly<Record<string, readonly string[]>>;

interface ConfigKind<T> {
  schema(ctx: LoadContext, configPath: string): z.ZodType<T, unknown>;
  rules(tree: unknown, ctx: LoadContext): ConfigProblem[];
  keys: KeyCatalog;
  /** Top-level keys to name when the file holds no mapping at all. */
  exampleKeys: string;
}

/** YAML 1.2 core, plus merge keys (`<<: *first`) so sources can share their settings. */
const YAML_SCHEMA = CORE_SCHEMA.withTags(mergeTag);

const FETCHER: ConfigKind<FetcherConfig> = {
  schema: fetcherSchema,
  rules: fetcherRules,
  keys: fetcherKeys,
  exampleKeys: 'incoming:, sources:',
};
const COPIER: ConfigKind<CopierConfig> = {
  schema: copierSchema,
  rules: copierRules,
  keys: copierKeys,
  exampleKeys: 'incoming:, destinations:',
};

const MIRROR: ConfigKind<MirrorConfig> = {
  schema: mirrorSchema,
  rules: mirrorRules,
  keys: mirrorKeys,
  exampleKeys: 'jobs:',
};

export function loadFetcherConfig(configPath: string, env: Env): Promise<FetcherConfig> {
  return loadConfig(FETCHER, configPath, env);
}

export function loadCopierConfig(configPath: string, env: Env): Promise<CopierConfig> {
  return loadConfig(COPIER, configPath, env);
}

export function loadMirrorConfig(configPath: string, env: Env): Promise<MirrorConfig> {
  return loadConfig(MIRROR, configPath, env);
}

export interface BuildMirrorConfigOptions {
  /** Stands for the config file in messages and in `configPath`, e.g. `(command line)`. */
  label: string;
  /** Relative local paths are relative to this folder (the working directory for the command line). */
  baseDir: string;
  env: Env;
  /** How a problem is shown, e.g. `jobs[0].max_delete` → `--max-delete` for the command line. */
  describeProblem?: (problem: ConfigProblem) => ConfigProblem;
}

/**
 * A mirror config from a tree built in code (the inline form of mirror-files): the
 * same schema and rules as a file, so the same mistakes get the same errors. No
 * `${ENV}` expansion: the values come from a shell that already did it.
 */
export function buildMirrorConfig(
  tree: Record<string, unknown>,
  options: BuildMirrorConfigOptions,
): MirrorConfig {
  const ctx: LoadContext = { configDir: options.baseDir, env: options.env };
  return validateTree(MIRROR, tree, ctx, {
    label: options.label,
    configPath: options.label,
    describeProblem: options.describeProblem ?? ((problem) => problem),
    envProblems: [],
  });
}

/**
 * File → YAML → `${ENV}` → schema → rules → frozen config. Every problem found at
 * any step after YAML parsing is collected and thrown at once as one E_CONFIG error
 * whose `problems` are the lines to print, each naming the file and the key path.
 */
export async function loadConfig<T>(kind: ConfigKind<T>, configPath: string, env: Env): Promise<T> {
  const absolutePath = resolve(configPath);
  const tree = await readYaml(configPath, absolutePath, kind.exampleKeys);
  const ctx: LoadContext = { configDir: dirname(absolutePath), env };
  const interpolated = interpolateEnv(tree, env);
  return validateTree(kind, interpolated.value, ctx, {
    label: configPath,
    configPath: absolutePath,
    describeProblem: (problem) => problem,
    envProblems: interpolated.problems,
  });
}

interface ValidateOptions {
  /** Names the config in messages. */
  label: string;
  /** Given to the schema as the config's `configPath`. */
  configPath: string;
  describeProblem: (problem: ConfigProblem) => ConfigProblem;
  envProblems: ConfigProblem[];
}

/** Schema → rules → frozen config; every problem at once as one E_CONFIG error. */
function validateTree<T>(kind: ConfigKind<T>, tree: unknown, ctx: LoadContext, options: ValidateOptions): T {
  const { label } = options;
  const parsed = kind.schema(ctx, options.configPath).safeParse(tree, { reportInput: true });
  const schemaProblems = parsed.success
    ? []
    : parsed.error.issues.flatMap((issue) => describeIssue(issue, kind.keys));
  const kept = tidyProblems(options.envProblems, [...schemaProblems, ...kind.rules(tree, ctx)]);

  const lines = unique(
    kept.map(options.describeProblem).map((problem) => `${label}: ${problem.keyPath}: ${problem.message}`),
  );
  if (lines.length > 0 || !parsed.success) {
    const count = lines.length === 1 ? '1 problem' : `${lines.length} problems`;
    throw new SyncError('E_CONFIG', `${label}: ${count} in the configuration`, {
      path: label,
      problems: lines,
      hint: 'fix the keys named above and run again',
    });
  }
  return deepFreeze(parsed.data);
}

/**
 * One line per mistake: a key whose `${VAR}` is unset gets only that line (its value
 * is still the placeholder, so any other complaint about it is noise); a key with a
 * real problem gets no extra "missing" line; a missing key gets one line, the
 * rules' (they say what the key is for); and a missing key that an unknown key's
 * "did you mean" already names is not reported twice.
 */
function tidyProblems(envProblems: ConfigProblem[], problems: ConfigProblem[]): ConfigProblem[] {
  const envPaths = new Set(envProblems.map((problem) => problem.keyPath));
  const isMissing = (problem: ConfigProblem) => problem.message.startsWith(MISSING);
  const withRealProblem = new Set(
    problems.filter((problem) => !isMissing(problem)).map((problem) => problem.keyPath),
  );
  const suggested = new Set(
    problems.flatMap((problem) => {
      const match = /^unknown key; did you mean "([^"]+)"\?$/.exec(problem.message);
      return match ? [`${parentKeyPath(problem.keyPath)}${match[1]}`] : [];
    }),
  );
  const lastMissingIndex = new Map<string, number>();
  problems.forEach((problem, index) => {
    if (isMissing(problem)) lastMissingIndex.set(problem.keyPath, index);
  });
  const kept = problems.filter((problem, index) => {
    if (envPaths.has(problem.keyPath)) return false;
    if (!isMissing(problem)) return true;
    return (
      !withRealProblem.has(problem.keyPath) &&
      !suggested.has(problem.keyPath) &&
      lastMissingIndex.get(problem.keyPath) === index
    );
  });
  return [...envProblems, ...kept];
}

/** `sources[0].hots` → `sources[0].`; `intervall` → ``. */
function parentKeyPath(keyPath: string): string {
  const dot = keyPath.lastIndexOf('.');
  return dot === -1 ? '' : keyPath.slice(0, dot + 1);
}

async function readYaml(displayPath: string, absolutePath: string, exampleKeys: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(absolutePath, 'utf8');
  } catch (err) {
    const reason = (err as { code?: string }).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw oneProblem(
      displayPath,
      `${displayPath}: cannot read the file (${reason}): pass --config with the path of your config`,
      { cause: err },
    );
  }
  const notAMapping = (got: string) => {
    return oneProblem(
      displayPath,
      `${displayPath}: (top level): expected a mapping of keys (${exampleKeys} …), got ${got}`,
    );
  };
  // Only blank lines and comments: js-yaml calls that a syntax error, but it is simply empty.
  if (/^(\s*(#.*)?(\r?\n|$))*$/.test(text)) throw notAMapping('an empty file');
  let tree: unknown;
  try {
    tree = load(text, { filename: displayPath, schema: YAML_SCHEMA });
  } catch (err) {
    if (!(err instanceof YAMLException)) throw err;
    const line = (err.mark?.line ?? 0) + 1;
    const column = (err.mark?.column ?? 0) + 1;
    throw oneProblem(
      displayPath,
      `${displayPath}:${line}:${column}: YAML syntax error: ${err.reason} (check the indentation, quotes and brackets there or just before)`,
      { line, column, cause: err },
    );
  }
  if (tree === undefined || tree === null) throw notAMapping('an empty document');
  if (Array.isArray(tree)) throw notAMapping('a list');
  if (typeof tree !== 'object') throw notAMapping(`a ${typeof tree} (${JSON.stringify(tree)})`);
  const loop = findAliasLoop(tree);
  if (loop) {
    throw oneProblem(
      displayPath,
      `${displayPath}: ${formatKeyPath(loop)}: a YAML alias refers to a node that contains it (an endless loop): point the *alias at something else`,
    );
  }
  return tree;
}

/**
 * A config that fails before its keys can be checked: one problem line, under the same
 * headline as any other config mistake (`FILE: 1 problem in the configuration`), so
 * the console never prints the problem twice.
 */
function oneProblem(
  displayPath: string,
  problem: string,
  extra: ErrorContext & { cause?: unknown } = {},
): SyncError {
  return new SyncError('E_CONFIG', `${displayPath}: 1 problem in the configuration`, {
    path: displayPath,
    hint: 'fix the keys named above and run again',
    ...extra,
    problems: [problem],
  });
}

function describeIssue(issue: z.core.$ZodIssue, keys: KeyCatalog): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const valid = keys[keyPattern(issue.path)] ?? [];
    return issue.keys.map((key) => {
      const suggestion = suggestKey(key, valid);
      return {
        keyPath: formatKeyPath([...issue.path, key]),
        message: suggestion
          ? `unknown key; did you mean "${suggestion}"?`
          : 'unknown key; remove it or check the spelling',
      };
    });
  }
  const missing = issue.code === 'invalid_type' && issue.input === undefined;
  const message = missing
    ? `required key is missing (${issue.message.replace(/, got nothing$/, '')})`
    : issue.message;
  return [{ keyPath: formatKeyPath(issue.path), message }];
}

function keyPattern(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? '*' : String(part))).join('.');
}

function unique(lines: string[]): string[] {
  return [...new Set(lines)];
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
