import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildMirrorConfig,
  type ConfigProblem,
  type Env,
  isSftpUrlText,
  type MirrorConfig,
} from '../config/index.js';
import { parseOrUsageError, parseStopOnLoop, usageError } from './parse-command-line.js';

/** The inline form: `mirror-files SOURCE REPLICA [flags]`, one job without a config file. */
export interface InlineCommandLine {
  source: string;
  replica: string;
  /** `status` prints what the ledger knows instead of running passes. */
  subcommand: 'run' | 'status';
  stopOnLoop?: number;
  dryRun: boolean;
  verbosity: number;
  json: boolean;
  /** The job's config keys, as a config file would hold them. */
  tree: Record<string, unknown>;
}

/** What the inline form's messages call the config's keys. */
const FLAG_OF_KEY: Record<string, string> = {
  interval: '--interval',
  schedule: '--schedule',
  time_zone: '--time-zone',
  log_file: '--log',
  state_dir: '--state-dir',
  log_dir: '--log-dir',
  concurrency_limit: '--concurrency',
  shutdown_grace: '--shutdown-grace',
  name: '--name',
  include: '--include',
  exclude: '--exclude',
  compare: '--compare',
  links: '--links',
  preserve_mode: '--preserve-mode',
  backup_dir: '--backup-dir',
  max_delete: '--max-delete',
  delete: '--no-delete',
  private_key: '--identity',
  passphrase_env: '--passphrase-env',
  password_env: '--password-env',
  agent: '--agent',
  known_hosts: '--known-hosts',
  host_key: '--host-key',
  insecure_skip_host_key_check: '--insecure-skip-host-key-check',
};

/** Keys of an SFTP end that the inline form sets from the end's URL. */
const URL_KEYS = new Set(['url', 'path', 'host', 'username', 'port']);

/** The names for ~/.ssh keys tried in order when no auth flag is given, as ssh does. */
const DEFAULT_KEY_FILES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/**
 * argv of the inline form → its parts. Unknown flags and missing or extra operands
 * are one E_USAGE error each (exit 2); everything about values is left to the
 * config schema and rules, so the inline form is checked exactly like a file.
 */
export function parseInlineCommandLine(args: readonly string[], env: Env): InlineCommandLine {
  const parsed = parseOrUsageError(() => parseOptions(args));
  const { values } = parsed;
  const positionals = [...parsed.positionals];
  const subcommand = positionals[0] === 'status' && positionals.length === 3 ? 'status' : 'run';
  if (subcommand === 'status') positionals.shift();
  if (positionals.length !== 2) {
    throw usageError(
      positionals.length < 2
        ? 'expected SOURCE and REPLICA (or --config FILE)'
        : `unexpected argument '${positionals[2] ?? ''}': give one SOURCE and one REPLICA`,
    );
  }
  const [source = '', replica = ''] = positionals;
  if (values.interval !== undefined && values.schedule !== undefined) {
    throw usageError('give --interval or --schedule, not both');
  }
  if (values.once && values['stop-on-loop'] !== undefined) {
    throw usageError('give --once or --stop-on-loop, not both');
  }
  const stopOnLoop =
    values['stop-on-loop'] !== undefined
      ? parseStopOnLoop(values['stop-on-loop'])
      : values.once
        ? 1
        : undefined;
  if (values.json && subcommand !== 'status')
    throw usageError('--json applies to the status subcommand only');
  return {
    source,
    replica,
    subcommand,
    ...(stopOnLoop !== undefined ? { stopOnLoop } : {}),
    dryRun: values['dry-run'] ?? false,
    verbosity: values.verbose?.length ?? 0,
    json: values.json ?? false,
    tree: buildTree(source, replica, values, env),
  };
}

/** The one-job config of an inline command line, through the same schema and rules as a file. */
export function inlineMirrorConfig(commandLine: InlineCommandLine, env: Env, cwd: string): MirrorConfig {
  return buildMirrorConfig(commandLine.tree, {
    label: '(command line)',
    baseDir: cwd,
    env,
    describeProblem: describeInlineProblem,
  });
}

type InlineValues = ReturnType<typeof parseOptions>['values'];

function buildTree(source: string, replica: string, values: InlineValues, env: Env): Record<string, unknown> {
  const home = env.HOME || homedir();
  const name = values.name ?? nameFromReplica(replica);
  const stateRoot = env.XDG_STATE_HOME || join(home, '.local', 'state');
  // One state folder per pair of ends, so two inline mirrors never share a lock.
  const place = (text: string) => (isSftpUrlText(text) ? text.trim() : resolve(text));
  const pairId = createHash('sha256')
    .update(`${place(source)}\0${place(replica)}`)
    .digest('hex')
    .slice(0, 8);
  const stateDir = values['state-dir'] ?? join(stateRoot, 'files-sync-link', 'mirror', `${name}-${pairId}`);
  const end = (text: string) => (isSftpUrlText(text) ? sftpEnd(text, values, env, home) : text);
  const optional = <T>(key: string, value: T | undefined) => (value === undefined ? {} : { [key]: value });
  return {
    ...optional('interval', values.interval),
    ...optional('schedule', values.schedule),
    ...optional('time_zone', values['time-zone']),
    ...optional('concurrency_limit', values.concurrency),
    ...optional('shutdown_grace', values['shutdown-grace']),
    ...optional('log_file', values.log),
    state_dir: stateDir,
    log_dir: values['log-dir'] ?? join(stateDir, 'log'),
    jobs: [
      {
        name,
        source: end(source),
        replica: end(replica),
        ...optional('include', values.include),
        ...optional('exclude', values.exclude),
        ...optional('compare', values.compare),
        ...optional('links', values.links),
        ...(values['preserve-mode'] ? { preserve_mode: true } : {}),
        ...optional('backup_dir', values['backup-dir']),
        ...optional('max_delete', values['max-delete']),
        ...(values['no-delete'] ? { delete: false } : {}),
      },
    ],
  };
}

/**
 * An SFTP end: the URL, and the login and host-key settings from the flags, or else
 * from ~/.ssh as ssh would take them (the first of id_ed25519, id_ecdsa, id_rsa, or
 * the agent; ~/.ssh/known_hosts).
 */
function sftpEnd(url: string, values: InlineValues, env: Env, home: string): Record<string, unknown> {
  const hasUser = /^sftp:\/\/[^/@]+@/i.test(url.trim());
  const auth: Record<string, unknown> = {};
  if (values.identity !== undefined) auth.private_key = values.identity;
  if (values['password-env'] !== undefined) auth.password_env = values['password-env'];
  if (values.agent) auth.agent = true;
  if (Object.keys(auth).length === 0) {
    const keyFile = DEFAULT_KEY_FILES.map((file) => join(home, '.ssh', file)).find((path) =>
      existsSync(path),
    );
    if (keyFile) auth.private_key = keyFile;
    else if (env.SSH_AUTH_SOCK) auth.agent = true;
  }
  if (values['passphrase-env'] !== undefined) auth.passphrase_env = values['passphrase-env'];
  const hostKey: Record<string, unknown> = {};
  if (values['known-hosts'] !== undefined) hostKey.known_hosts = values['known-hosts'];
  if (values['host-key'] !== undefined) hostKey.host_key = values['host-key'];
  if (values['insecure-skip-host-key-check']) hostKey.insecure_skip_host_key_check = true;
  if (Object.keys(hostKey).length === 0) hostKey.known_hosts = join(home, '.ssh', 'known_hosts');
  return {
    url,
    ...(hasUser ? {} : { username: env.USER || env.LOGNAME || userInfo().username }),
    ...auth,
    ...hostKey,
  };
}

/** `/srv/backup/reports/` → `reports`: a job name from the replica's last folder name. */
function nameFromReplica(replica: string): string {
  const path = isSftpUrlText(replica) ? replica.replace(/^sftp:\/\/[^/]*/i, '') : resolve(replica);
  const cleaned = basename(path.replace(/\/+$/, ''))
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 64);
  return cleaned === '' ? 'mirror' : cleaned;
}

/** A config problem in the words of the command line: flags and operands instead of keys. */
function describeInlineProblem(problem: ConfigProblem): ConfigProblem {
  const match = /^jobs\[0\](?:\.(source|replica))?(?:\.([a-z_]+))?(?:\[\d+\])?$/.exec(problem.keyPath);
  let keyPath: string;
  if (match) {
    const [, end, key] = match;
    if (key !== undefined && (end === undefined || !URL_KEYS.has(key))) keyPath = FLAG_OF_KEY[key] ?? key;
    else keyPath = end === 'source' ? 'SOURCE' : end === 'replica' ? 'REPLICA' : 'SOURCE/REPLICA';
  } else {
    keyPath = FLAG_OF_KEY[problem.keyPath] ?? problem.keyPath;
  }
  const message = problem.message
    .replace(
      /(?<![\w./-])([a-z]+(?:_[a-z]+)+|agent)(?![\w./-])(: true)?/g,
      (word: string, key: string) => FLAG_OF_KEY[key] ?? word,
    )
    .replace(/\binterval or schedule\b/, '--interval or --schedule')
    .replace(/^links: (\S+)/, '--links $1');
  return { keyPath, message };
}

function parseOptions(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      interval: { type: 'string' },
      schedule: { type: 'string' },
      'time-zone': { type: 'string' },
      log: { type: 'string' },
      once: { type: 'boolean' },
      'stop-on-loop': { type: 'string' },
      'dry-run': { type: 'boolean', short: 'n' },
      verbose: { type: 'boolean', short: 'v', multiple: true },
      json: { type: 'boolean' },
      name: { type: 'string' },
      include: { type: 'string', multiple: true },
      exclude: { type: 'string', multiple: true },
      compare: { type: 'string' },
      links: { type: 'string' },
      'preserve-mode': { type: 'boolean' },
      'backup-dir': { type: 'string' },
      'max-delete': { type: 'string' },
      'no-delete': { type: 'boolean' },
      identity: { type: 'string', short: 'i' },
      'passphrase-env': { type: 'string' },
      'password-env': { type: 'string' },
      agent: { type: 'boolean' },
      'known-hosts': { type: 'string' },
      'host-key': { type: 'string' },
      'insecure-skip-host-key-check': { type: 'boolean' },
      'state-dir': { type: 'string' },
      'log-dir': { type: 'string' },
      concurrency: { type: 'string' },
      'shutdown-grace': { type: 'string' },
    },
  });
}
