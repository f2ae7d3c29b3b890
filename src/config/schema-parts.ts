import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import * as z from 'zod';
import type { HostKeyCheck, SftpAuth, SftpConnectionConfig } from './config-types.js';
import { parseDuration } from './parse-duration.js';
import { formatSize, parseSize } from './parse-size.js';
import { Secret } from './secret.js';

/** What a schema needs from outside the YAML: where the file is and the environment. */
export interface LoadContext {
  configDir: string;
  env: Readonly<Record<string, string | undefined>>;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value;
}

/** Every message says what was expected and what was found. */
function expected(what: string) {
  return { error: (issue: { input?: unknown }) => `expected ${what}, got ${describeValue(issue.input)}` };
}

/** Numbers written as strings (e.g. from `${PORT}`) are accepted. */
function numeric(value: unknown): unknown {
  return typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
}

export function intIn(min: number, max: number) {
  const message = expected(`an integer ${min}–${max}`);
  return z.preprocess(numeric, z.int(message).min(min, message).max(max, message));
}

/** `"true"`/`"false"` strings are accepted too, so a boolean may come from `${VAR}`. */
export const booleanValue = z.preprocess(
  (value) => (value === 'true' ? true : value === 'false' ? false : value),
  z.boolean(expected('true or false')),
);

/** One of a fixed set of words. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, expected(`one of ${values.join(', ')}`));
}

/** A list of mappings; `what` names one item (`source`, `destination`). */
export function listOf<T extends z.ZodType>(item: T, what: string) {
  return z.array(item, expected(`a list of ${what}s`)).min(1, expected(`at least one ${what}`));
}

export const nonEmptyString = z
  .string(expected('a non-empty string'))
  .trim()
  .min(1, expected('a non-empty string'));

/** The longest delay `setTimeout` honours; a longer one fires at once (a hot loop). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration in milliseconds, optionally bounded: `above0` for deadlines (a zero
 * deadline fails every call), `timer` for values that end up in `setTimeout`.
 */
export function durationIn(bounds: { above0?: boolean; timer?: boolean } = {}) {
  return z
    .union([z.string(), z.number()], expected('a duration such as 500ms, 30s, 5m or 2h'))
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      const got = describeValue(value);
      if (ms === undefined) {
        // A bare number is refused on purpose (seconds or milliseconds?): say which unit to add.
        const bare = /^\s*\d+(\.\d+)?\s*$/.test(String(value));
        const hint = bare ? ` (add a unit, as in ${String(value).trim()}s)` : '';
        ctx.addIssue({
          code: 'custom',
          message: `expected a duration such as 500ms, 30s, 5m or 2h, got ${got}${hint}`,
        });
        return z.NEVER;
      }
      if (bounds.above0 && ms === 0) {
        ctx.addIssue({ code: 'custom', message: `expected a duration above 0, such as 30s, got ${got}` });
        return z.NEVER;
      }
      if (bounds.timer && ms > MAX_TIMER_MS) {
        ctx.addIssue({ code: 'custom', message: `expected a duration of at most 24d, got ${got}` });
        return z.NEVER;
      }
      return ms;
    });
}

/** Any duration (an age to compare with, never a timer). */
export const durationMs = durationIn();

export function sizeIn(minBytes = 0) {
  const what = 'a size such as 512KiB, 100MiB or 1GiB';
  return z.union([z.string(), z.number()], expected(what)).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected ${what}, got ${describeValue(value)}` });
      return z.NEVER;
    }
    if (bytes < minBytes) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size of at least ${formatSize(minBytes)}, got ${describeValue(value)}`,
      });
      return z.NEVER;
    }
    return bytes;
  });
}

export const sizeBytes = sizeIn();

/** Permission bits as an octal string; YAML 1.2 reads a bare 0640 as decimal 640, so a number is refused. */
export const fileModeBits = z
  .string(expected('an octal mode in quotes such as "0640"'))
  .transform((value, ctx) => {
    if (!/^0?[0-7]{3}$/.test(value.trim())) {
      ctx.addIssue({
        code: 'custom',
        message: `expected an octal mode in quotes such as "0640", got ${describeValue(value)}`,
      });
      return z.NEVER;
    }
    return Number.parseInt(value.trim(), 8);
  });

/** One string is a list of one; a list keeps its items' own key paths (`include[1]`) in messages. */
function oneOrList(item: z.ZodType<string, unknown>, what: string) {
  return z.preprocess(
    (value) => (typeof value === 'string' ? [value] : value),
    z.array(item, expected(`${what} or a list of them`)),
  );
}

const globPattern = z
  .string(expected('a glob pattern such as "*.csv"'))
  .trim()
  .min(1, expected('a glob pattern such as "*.csv"'));

/** A glob or a list of globs. */
export const globList = oneOrList(globPattern, 'a glob pattern');

const fingerprint = z
  .string(expected('a "SHA256:…" fingerprint'))
  .trim()
  .min(1, expected('a "SHA256:…" fingerprint'));

/** One pinned host key fingerprint or several (a key rotation); their form is checked by the rules. */
export const hostKeyList = oneOrList(fingerprint, 'a "SHA256:…" fingerprint');

/** A mapping whose unknown keys are errors, with a message that says what kind of mapping. */
export function strictMapping<T extends z.core.$ZodLooseShape>(shape: T, what: string) {
  return z.strictObject(shape, expected(what));
}

export const jobName = z
  .string(expected('a name'))
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    expected('a name of letters, digits, ".", "_" or "-" (at most 64, not starting with "." or "-")'),
  );

/** A local path: `~` is the home folder; a relative path is relative to the config file's folder. */
export function localPath(ctx: LoadContext) {
  return nonEmptyString.transform((value) => resolveLocalPath(value, ctx));
}

/**
 * `~` and `~/…` are the home folder (HOME from the given environment, so loading
 * reads no global state); any other relative path is relative to the config
 * file's folder, never to the working directory.
 */
export function resolveLocalPath(value: string, ctx: LoadContext): string {
  const home = ctx.env.HOME || homedir();
  const trimmed = value.trim();
  if (trimmed === '~') return resolve(home);
  if (trimmed.startsWith('~/')) return resolve(home, trimmed.slice(2));
  return isAbsolute(trimmed) ? resolve(trimmed) : resolve(ctx.configDir, trimmed);
}

/** Remote paths are kept as written (absolute, or relative to the login folder), without a trailing slash. */
export function trimRemotePath(value: string): string {
  return value.length > 1 ? value.replace(/\/+$/, '') || '/' : value;
}

export const remotePath = nonEmptyString.transform(trimRemotePath);

/** The keys of an SFTP endpoint, shared by fetcher sources, SFTP destinations and mirror ends. */
export const sftpConnectionShape = {
  host: nonEmptyString,
  port: intIn(1, 65535).default(22),
  username: nonEmptyString,
  private_key: nonEmptyString.optional(),
  passphrase_env: nonEmptyString.optional(),
  password_env: nonEmptyString.optional(),
  agent: booleanValue.optional(),
  known_hosts: nonEmptyString.optional(),
  host_key: hostKeyList.optional(),
  insecure_skip_host_key_check: booleanValue.optional(),
  connections: intIn(1, 32).default(4),
  connect_timeout: durationIn({ above0: true, timer: true }).default(20_000),
  operation_timeout: durationIn({ above0: true, timer: true }).default(60_000),
  // 0 turns keepalive off.
  keepalive_interval: durationIn({ timer: true }).default(15_000),
  retries: intIn(0, 20).default(3),
  // 255 KiB × 16 moved big files ~40% faster than 32 KiB × 64 on loopback: fewer
  // requests, fewer packets to build, same bytes in flight (scripts/bench-download.ts).
  read_concurrency: intIn(1, 256).default(16),
  chunk_size: sizeIn(1024).default(255 * 1024),
};

export type RawSftpConnection = {
  host: string;
  port: number;
  username: string;
  private_key?: string | undefined;
  passphrase_env?: string | undefined;
  password_env?: string | undefined;
  agent?: boolean | undefined;
  known_hosts?: string | undefined;
  host_key?: string[] | undefined;
  insecure_skip_host_key_check?: boolean | undefined;
  connections: number;
  connect_timeout: number;
  operation_timeout: number;
  keepalive_interval: number;
  retries: number;
  read_concurrency: number;
  chunk_size: number;
};

/**
 * The typed connection config. Conflicting or missing auth and host-key keys are
 * reported by the semantic rules; here the first present one is taken.
 */
export function toSftpConnection(raw: RawSftpConnection, ctx: LoadContext): SftpConnectionConfig {
  return {
    host: raw.host,
    port: raw.port,
    username: raw.username,
    auth: toAuth(raw, ctx),
    hostKey: toHostKeyCheck(raw, ctx),
    connections: raw.connections,
    connectTimeoutMs: raw.connect_timeout,
    operationTimeoutMs: raw.operation_timeout,
    keepaliveIntervalMs: raw.keepalive_interval,
    retries: raw.retries,
    readConcurrency: raw.read_concurrency,
    chunkSizeBytes: raw.chunk_size,
  };
}

function toAuth(raw: RawSftpConnection, ctx: LoadContext): SftpAuth {
  if (raw.private_key !== undefined) {
    const passphrase = raw.passphrase_env ? ctx.env[raw.passphrase_env] : undefined;
    return {
      kind: 'key',
      privateKeyPath: resolveLocalPath(raw.private_key, ctx),
      ...(passphrase !== undefined ? { passphrase: new Secret(passphrase) } : {}),
    };
  }
  if (raw.password_env !== undefined)
    return { kind: 'password', password: new Secret(ctx.env[raw.password_env] ?? '') };
  return { kind: 'agent', agentSocketPath: ctx.env.SSH_AUTH_SOCK ?? '' };
}

function toHostKeyCheck(raw: RawSftpConnection, ctx: LoadContext): HostKeyCheck {
  if (raw.known_hosts !== undefined) {
    return { kind: 'known_hosts', knownHostsPath: resolveLocalPath(raw.known_hosts, ctx) };
  }
  if (raw.host_key !== undefined) return { kind: 'fingerprint', fingerprints: raw.host_key };
  return { kind: 'insecure' };
}
