import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { load, YAMLException } from 'js-yaml';
import type { z } from 'zod';
import { SyncError } from '../errors/index.js';
import type { CopierConfig, FetcherConfig } from './config-types.js';
import { copierKeys, copierSchema } from './copier-schema.js';
import { fetcherKeys, fetcherSchema } from './fetcher-schema.js';
import { interpolateEnv } from './interpolate-env.js';
import { formatKeyPath } from './key-path.js';
import type { LoadContext } from './schema-parts.js';
import { type ConfigProblem, copierRules, fetcherRules } from './semantic-rules.js';
import { suggestKey } from './suggest-key.js';

const MISSING = 'required key is missing';

export type Env = Readonly<Record<string, string | undefined>>;

/** Valid keys of each mapping, by key path pattern (`*` for a list index), for typo suggestions. */
export type KeyCatalog = Readonly<Record<string, readonly string[]>>;

interface ConfigKind<T> {
  schema(ctx: LoadContext, configPath: string): z.ZodType<T, unknown>;
  rules(tree: unknown, ctx: LoadContext): ConfigProblem[];
  keys: KeyCatalog;
}

const FETCHER: ConfigKind<FetcherConfig> = { schema: fetcherSchema, rules: fetcherRules, keys: fetcherKeys };
const COPIER: ConfigKind<CopierConfig> = { schema: copierSchema, rules: copierRules, keys: copierKeys };

export function loadFetcherConfig(configPath: string, env: Env): Promise<FetcherConfig> {
  return loadConfig(FETCHER, configPath, env);
}

export function loadCopierConfig(configPath: string, env: Env): Promise<CopierConfig> {
  return loadConfig(COPIER, configPath, env);
}

/**
 * File → YAML → `${ENV}` → schema → rules → frozen config. Every problem found at
 * any step after YAML parsing is collected and thrown at once as one E_CONFIG error
 * whose `problems` are the lines to print, each naming the file and the key path.
 */
export async function loadConfig<T>(kind: ConfigKind<T>, configPath: string, env: Env): Promise<T> {
  const absolutePath = resolve(configPath);
  const tree = await readYaml(configPath, absolutePath);
  const ctx: LoadContext = { configDir: dirname(absolutePath), env };
  const interpolated = interpolateEnv(tree, env);
  const problems: ConfigProblem[] = [...interpolated.problems];

  const parsed = kind.schema(ctx, absolutePath).safeParse(interpolated.value, { reportInput: true });
  if (!parsed.success)
    problems.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, kind.keys)));
  const ruleProblems = kind.rules(interpolated.value, ctx);
  // A rule that explains a missing key says more than the schema's "required": keep the rule's line.
  const explained = new Set(ruleProblems.map((problem) => problem.keyPath));
  const kept = problems.filter(
    (problem) => !(problem.message.startsWith(MISSING) && explained.has(problem.keyPath)),
  );
  kept.push(...ruleProblems);

  const lines = unique(kept.map((problem) => `${configPath}: ${problem.keyPath}: ${problem.message}`));
  if (lines.length > 0 || !parsed.success) {
    const count = lines.length === 1 ? '1 problem' : `${lines.length} problems`;
    throw new SyncError('E_CONFIG', `${configPath}: ${count} in the configuration`, {
      path: configPath,
      problems: lines,
      hint: 'fix the keys named above and run again',
    });
  }
  return deepFreeze(parsed.data);
}

async function readYaml(displayPath: string, absolutePath: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(absolutePath, 'utf8');
  } catch (err) {
    const reason = (err as { code?: string }).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new SyncError('E_CONFIG', `cannot read config file ${displayPath}: ${reason}`, {
      path: displayPath,
      problems: [
        `${displayPath}: cannot read the file (${reason}): pass --config with the path of your config`,
      ],
      cause: err,
    });
  }
  let tree: unknown;
  try {
    tree = load(text, { filename: displayPath });
  } catch (err) {
    if (!(err instanceof YAMLException)) throw err;
    const line = (err.mark?.line ?? 0) + 1;
    const column = (err.mark?.column ?? 0) + 1;
    const problem = `${displayPath}:${line}:${column}: YAML syntax error: ${err.reason}`;
    throw new SyncError('E_CONFIG', problem, {
      path: displayPath,
      line,
      column,
      problems: [problem],
      cause: err,
    });
  }
  if (tree === null || typeof tree !== 'object' || Array.isArray(tree)) {
    const problem = `${displayPath}: expected a mapping of keys (such as incoming: and sources:), got ${tree === undefined || tree === null ? 'an empty file' : typeof tree}`;
    throw new SyncError('E_CONFIG', problem, { path: displayPath, problems: [problem] });
  }
  return tree;
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
