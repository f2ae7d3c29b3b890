#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runMirrorApp } from '../apps/mirror-app.js';
import { statusApp } from '../apps/status-app.js';
import { type Env, loadMirrorConfig, type MirrorConfig } from '../config/index.js';
import { formatErrorLine } from '../errors/index.js';
import { inlineMirrorConfig, parseInlineCommandLine } from './mirror-inline.js';
import { type CommandSpec, EXIT_OK, EXIT_USAGE, runCommand } from './run-command.js';

const NAME = 'mirror-files';

const SPEC: CommandSpec<MirrorConfig> = {
  name: NAME,
  defaultConfigPath: 'etc/mirror.yml',
  description:
    'Keep each replica exactly equal to its source: copy new and changed files, remove the rest, behind safety guards.',
  loadConfig: loadMirrorConfig,
  run: runMirrorApp,
  status: statusApp(NAME, (config: MirrorConfig) => config.jobs.map((job) => job.name)),
};

/**
 * Two forms: `--config FILE` for any number of jobs (the common command line, as
 * fetch-files and copy-files), or `SOURCE REPLICA [flags]` for one job. The inline
 * form's flags become a one-job config checked by the same schema and rules, then
 * it runs exactly as the config form does.
 */
async function main(argv: readonly string[], env: Env): Promise<never> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return process.exit(EXIT_OK);
  }
  if (!isInlineForm(argv)) return runCommand(SPEC, argv, env);
  let commandLine: ReturnType<typeof parseInlineCommandLine>;
  try {
    commandLine = parseInlineCommandLine(argv, env);
  } catch (err) {
    process.stderr.write(`${NAME}: ${formatErrorLine(err)}\n`);
    return process.exit(EXIT_USAGE);
  }
  const cwd = process.cwd();
  // The common lifecycle (logger, signals, exit codes) with the inline config in place of a file.
  const commonArgv = [
    ...(commandLine.subcommand === 'status' ? ['status'] : []),
    ...(commandLine.stopOnLoop !== undefined ? ['--stop-on-loop', String(commandLine.stopOnLoop)] : []),
    ...(commandLine.dryRun ? ['--dry-run'] : []),
    ...(commandLine.json ? ['--json'] : []),
    ...Array.from({ length: commandLine.verbosity }, () => '-v'),
  ];
  return runCommand(
    {
      ...SPEC,
      // A mistake in the flags rejects like a mistake in a file, inside the common error handling.
      loadConfig: () =>
        new Promise<MirrorConfig>((resolve) => resolve(inlineMirrorConfig(commandLine, env, cwd))),
    },
    commonArgv,
    env,
  );
}

/** Operands other than `status` mean the inline form; `--config` (or none) the config form. */
function isInlineForm(argv: readonly string[]): boolean {
  if (argv.some((arg) => arg === '--config' || arg === '-c' || arg.startsWith('--config='))) return false;
  const { positionals } = parseArgs({
    args: [...argv],
    strict: false,
    allowPositionals: true,
    options: VALUE_FLAGS,
  });
  const operands = positionals[0] === 'status' ? positionals.slice(1) : positionals;
  return operands.length > 0;
}

/** Flags that take a value, so their values are not mistaken for operands. */
const VALUE_FLAGS = Object.fromEntries(
  [
    'interval',
    'schedule',
    'time-zone',
    'log',
    'stop-on-loop',
    'name',
    'include',
    'exclude',
    'compare',
    'links',
    'backup-dir',
    'max-delete',
    'identity',
    'passphrase-env',
    'password-env',
    'known-hosts',
    'host-key',
    'state-dir',
    'log-dir',
    'concurrency',
    'shutdown-grace',
  ].map((flag) => [flag, { type: 'string' as const, ...(flag === 'identity' ? { short: 'i' } : {}) }]),
);

const HELP = `Usage: ${NAME} [--config FILE] [--stop-on-loop N] [--dry-run] [-v|-vv|-vvv]
       ${NAME} status [--config FILE] [--json]
       ${NAME} SOURCE REPLICA [--interval 5m | --schedule CRON] [--once] [--log FILE] [options]

${SPEC.description}

SOURCE and REPLICA are local folders or sftp://user@host[:port]/path (one of them local).
After a pass the replica holds exactly the source's files and folders. A pass is refused,
touching nothing, when the replica and source nest, the source is missing, unreachable or
empty while the replica is not, or it would remove more than max_delete (default 50%).

Config form (any number of jobs; see etc/mirror.yml and docs/mirror.md):
  -c, --config FILE     configuration file (default: ${SPEC.defaultConfigPath})

Inline form (one job, no config file):
      --interval D      pause between passes (default 5m when neither --interval nor --schedule)
      --schedule CRON   start passes on a cron expression, e.g. "*/5 * * * *" (seconds field allowed)
      --time-zone TZ    IANA time zone of --schedule (default: the machine's)
      --once            one pass, then exit (same as --stop-on-loop 1)
      --log FILE        also write every event (created, updated, removed, …) to FILE
      --include GLOB    mirror only matching files (repeatable); --exclude GLOB leaves files out
      --compare M       size_mtime (default) | checksum (sha256 of same-size files)
      --links M         skip (default) | copy-as-link (local replica) | follow (links to files)
      --preserve-mode   give copies the source's permission bits
      --backup-dir DIR  move removed and replaced files here (below a per-pass timestamp)
      --max-delete N    most removals per pass: a count or a percentage such as 50% (default 50%)
      --no-delete       never remove anything from the replica
      --name NAME       job name in logs (default: the replica's folder name)
      --state-dir DIR   lock and pass records (default ~/.local/state/files-sync-link/mirror/NAME-ID)
      --log-dir DIR     all-*.log files (default STATE_DIR/log)
      --concurrency N   copies in flight (default 8)
  SFTP login (default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa, else the ssh-agent; ~/.ssh/known_hosts):
  -i, --identity FILE   private key file; --passphrase-env NAME names the variable holding its passphrase
      --password-env NAME  log in with the password held in this environment variable
      --agent           log in with the keys of the running ssh-agent
      --known-hosts FILE | --host-key SHA256:… | --insecure-skip-host-key-check

Both forms:
      --stop-on-loop N  stop after N passes (default: loop until SIGINT/SIGTERM)
  -n, --dry-run         show what would be done; change nothing
  -v, -vv, -vvv         more detail on the console
  -h, --help            this text
  -V, --version         print the version

Exit codes: 0 all done; 1 some job failed or was refused (the rest went through); 2 bad usage or
            config; 70 internal error (a bug: the trace is in the debug log); 130 interrupted.
`;

await main(process.argv.slice(2), process.env);
