import { parseArgs } from 'node:util';
import { SyncError } from '../errors/index.js';

export interface CommandLine {
  configPath: string;
  /** Stop after this many passes; undefined loops until a signal. */
  stopOnLoop?: number;
  dryRun: boolean;
  /** Number of -v flags. */
  verbosity: number;
  help: boolean;
  version: boolean;
  /** `status` prints what the ledger knows instead of running passes. */
  subcommand: 'run' | 'status';
  json: boolean;
}

/**
 * argv → CommandLine. Any mistake is one E_USAGE error whose message is the line to
 * print; unknown flags are refused rather than ignored.
 */
export function parseCommandLine(args: readonly string[], defaultConfigPath: string): CommandLine {
  const { values, positionals } = parseOrUsageError(() => parseOptions(args));
  const subcommand = positionals[0];
  if (positionals.length > 1 || (subcommand !== undefined && subcommand !== 'status')) {
    throw usageError(`unexpected argument '${positionals.at(-1) ?? ''}' (the only subcommand is 'status')`);
  }
  const stopOnLoop =
    values['stop-on-loop'] === undefined ? undefined : parseStopOnLoop(values['stop-on-loop']);
  if (values.json && subcommand !== 'status')
    throw usageError('--json applies to the status subcommand only');
  return {
    configPath: values.config ?? defaultConfigPath,
    ...(stopOnLoop !== undefined ? { stopOnLoop } : {}),
    dryRun: values['dry-run'] ?? false,
    verbosity: values.verbose?.length ?? 0,
    help: values.help ?? false,
    version: values.version ?? false,
    subcommand: subcommand === 'status' ? 'status' : 'run',
    json: values.json ?? false,
  };
}

function parseOptions(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'stop-on-loop': { type: 'string' },
      'dry-run': { type: 'boolean', short: 'n' },
      verbose: { type: 'boolean', short: 'v', multiple: true },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
      json: { type: 'boolean' },
    },
  });
}

/** `--stop-on-loop N`: a whole number of passes, at least 1. */
export function parseStopOnLoop(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw usageError(`--stop-on-loop expects a whole number of passes of at least 1, got '${text}'`);
  }
  return Number(text);
}

/** Runs node's `parseArgs`; its complaint becomes our one-line usage error. */
export function parseOrUsageError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw usageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** A mistake on the command line: the message is the one line to print (exit 2). */
export function usageError(message: string): SyncError {
  return new SyncError('E_USAGE', message, { hint: 'see --help' });
}

export function usageText(command: string, defaultConfigPath: string, what: string): string {
  return `Usage: ${command} [--config FILE] [--stop-on-loop N] [--dry-run] [-v|-vv|-vvv]
       ${command} status [--config FILE] [--json]

${what}

Options:
  -c, --config FILE     configuration file (default: ${defaultConfigPath})
      --stop-on-loop N  stop after N passes (default: loop until SIGINT/SIGTERM)
  -n, --dry-run         show what would be done; change nothing, not even the ledger
  -v, -vv, -vvv         more detail on the console: debug, trace, trace with protocol detail
  -h, --help            this text
  -V, --version         print the version

Exit codes: 0 all done; 1 some files failed (the rest went through); 2 bad usage or config;
            70 internal error (a bug: the trace is in the debug log); 130 interrupted.
`;
}
