import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { App } from '../apps/app-context.js';
import type { PassOutcome } from '../apps/run-loop.js';
import { collectSecrets, type Env } from '../config/index.js';
import { formatErrorLine, isSyncError, SyncError, toSyncError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { type CommandLine, parseCommandLine, usageText } from './parse-command-line.js';

/** `-vvv`: trace lines and, on top, the SSH protocol of every connection. */
const PROTOCOL_TRACE_VERBOSITY = 3;

/** What runCommand reads from every command's config; `logFile` is an extra log file (mirror-files `--log`). */
export interface CommandConfig {
  logDir: string;
  shutdownGraceMs: number;
  logFile?: string;
}

export interface CommandSpec<C extends CommandConfig> {
  name: string;
  defaultConfigPath: string;
  /** One sentence for --help. */
  description: string;
  loadConfig(configPath: string, env: Env): Promise<C>;
  run: App<C>;
  status: App<C>;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;
export const EXIT_INTERRUPTED = 130;

const EXIT_BY_OUTCOME: Record<PassOutcome, number> = {
  ok: EXIT_OK,
  failed: EXIT_FAILED,
  interrupted: EXIT_INTERRUPTED,
};

/** Codes that mean "cannot start as configured": the operator must change something first. */
const STARTUP_CODES = new Set(['E_USAGE', 'E_CONFIG', 'E_LOCKED']);

/**
 * The whole life of a command: argv → config → logger → app → exit code. The only
 * place that turns errors into exit codes and calls process.exit.
 */
export async function runCommand<C extends CommandConfig>(
  spec: CommandSpec<C>,
  argv: readonly string[],
  env: Env,
): Promise<never> {
  let log: Logger | undefined;
  let logDir: string | undefined;
  process.on('unhandledRejection', (reason) => exitOnBug(spec.name, reason, log, logDir));
  process.on('uncaughtException', (err) => exitOnBug(spec.name, err, log, logDir));

  let commandLine: CommandLine;
  try {
    commandLine = parseCommandLine(argv, spec.defaultConfigPath);
  } catch (err) {
    process.stderr.write(`${spec.name}: ${formatErrorLine(err)}\n`);
    return process.exit(EXIT_USAGE);
  }
  if (commandLine.help) {
    process.stdout.write(usageText(spec.name, spec.defaultConfigPath, spec.description));
    return process.exit(EXIT_OK);
  }
  if (commandLine.version) {
    process.stdout.write(`${spec.name} ${readVersion()}\n`);
    return process.exit(EXIT_OK);
  }

  try {
    const config = await spec.loadConfig(commandLine.configPath, env);
    logDir = config.logDir;
    try {
      log = createLogger({
        app: spec.name,
        logDir: config.logDir,
        verbosity: commandLine.verbosity,
        secrets: collectSecrets(config),
        pretty: process.stderr.isTTY === true,
        ...(config.logFile !== undefined ? { extraLogFile: config.logFile } : {}),
      });
    } catch (err) {
      logDir = undefined;
      throw toSyncError(err, {
        op: 'open the log files',
        path: config.logDir,
        hint: 'check log_dir exists or can be created, and is writable',
      });
    }
    const { stopSignal, forceSignal } = listenForStopSignals(log, config.shutdownGraceMs);
    const app = commandLine.subcommand === 'status' ? spec.status : spec.run;
    const outcome = await app({
      config,
      log,
      dryRun: commandLine.dryRun,
      ...(commandLine.stopOnLoop !== undefined ? { stopOnLoop: commandLine.stopOnLoop } : {}),
      stopSignal,
      forceSignal,
      stdout: process.stdout,
      interactive: process.stdout.isTTY === true,
      json: commandLine.json,
      traceProtocol: commandLine.verbosity >= PROTOCOL_TRACE_VERBOSITY,
    });
    return process.exit(EXIT_BY_OUTCOME[outcome]);
  } catch (err) {
    if (isSyncError(err) && STARTUP_CODES.has(err.code)) {
      const problems = err.context.problems;
      if (Array.isArray(problems) && problems.length > 0) {
        process.stderr.write(
          `${spec.name}: ${err.message}:\n${problems.map((line) => `  ${String(line)}\n`).join('')}`,
        );
      } else {
        process.stderr.write(`${spec.name}: ${formatErrorLine(err)}\n`);
      }
      log?.error({ err }, err.message);
      return process.exit(EXIT_USAGE);
    }
    if (isSyncError(err) && err.code === 'E_ABORTED') return process.exit(EXIT_INTERRUPTED);
    if (isSyncError(err) && err.code !== 'E_INTERNAL') {
      // A failure the operator can act on (a log folder that cannot be written, …): one line, no trace.
      process.stderr.write(`${spec.name}: ${formatErrorLine(err)}\n`);
      log?.error({ err }, err.message);
      return process.exit(EXIT_USAGE);
    }
    return exitOnBug(spec.name, err, log, logDir);
  }
}

/** A bug: one line for the operator, the full trace in the debug log (or on stderr when there is no log yet). */
function exitOnBug(name: string, err: unknown, log: Logger | undefined, logDir: string | undefined): never {
  const wrapped = err instanceof SyncError ? err : toSyncError(err, { op: name });
  if (log && logDir) {
    // The trace goes to the debug log only; the console (and the other files) get one line.
    log.debug({ err: wrapped }, `internal error trace: ${wrapped.message}`);
    log.fatal({ code: wrapped.code }, `internal error: ${formatErrorLine(wrapped)}`);
    process.stderr.write(
      `${name}: internal error: ${formatErrorLine(wrapped)} (full trace in ${join(logDir, 'all-debug.log')})\n`,
    );
  } else {
    const stack = err instanceof Error ? err.stack : String(err);
    process.stderr.write(`${name}: internal error: ${formatErrorLine(wrapped)}\n${stack ?? ''}\n`);
  }
  return process.exit(EXIT_INTERNAL);
}

/**
 * First SIGINT/SIGTERM: stop starting work, let transfers in flight finish within the
 * grace period. Second: abort them now.
 */
function listenForStopSignals(
  log: Logger,
  graceMs: number,
): { stopSignal: AbortSignal; forceSignal: AbortSignal } {
  const stop = new AbortController();
  const force = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      log.warn(
        { signal, graceMs },
        `${signal}: stopping; transfers in flight get ${Math.round(graceMs / 1000)} s to finish (send it again to stop now)`,
      );
      stop.abort();
    } else if (!force.signal.aborted) {
      log.warn({ signal }, `${signal} again: aborting transfers in flight`);
      force.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { stopSignal: stop.signal, forceSignal: force.signal };
}

function readVersion(): string {
  // dist/cli/run-command.js and src/cli/run-command.ts both sit two levels below the package root.
  const path = join(import.meta.dirname, '..', '..', 'VERSION.txt');
  return readFileSync(path, 'utf8').trim();
}
