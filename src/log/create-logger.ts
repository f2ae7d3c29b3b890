import { mkdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  type DestinationStream,
  type Level,
  type Logger,
  pino,
  stdSerializers,
  stdTimeFunctions,
} from 'pino';
import pretty from 'pino-pretty';
import { maskSecretFieldsInLine } from './mask-secret-fields.js';
import { redactSecrets } from './redact-secrets.js';

export type { Logger };

export interface CreateLoggerOptions {
  /** Command name, on every line (`fetch-files`, `copy-files`, `mirror-files`). */
  app: string;
  /** Where `all-debug.log`, `all-info.log`, `all-warning.log` and `all-error.log` go; none when undefined. */
  logDir?: string;
  /** 0 info (default), 1 debug (-v), 2 trace (-vv), 3 trace with protocol detail (-vvv). */
  verbosity: number;
  /** Values never to print: passwords and passphrases from the config. */
  secrets: readonly string[];
  /** Pretty human lines on a terminal, JSON lines otherwise. */
  pretty: boolean;
  /** Console stream; stderr by default (stdout is kept for command output). */
  consoleFd?: number;
  /** Extra file written with every line at info and up (`--log FILE`). */
  extraLogFile?: string;
}

const LEVEL_FILES: readonly [Level, string][] = [
  ['debug', 'all-debug.log'],
  ['info', 'all-info.log'],
  ['warn', 'all-warning.log'],
  ['error', 'all-error.log'],
];

export function consoleLevelFor(verbosity: number): Level {
  if (verbosity <= 0) return 'info';
  if (verbosity === 1) return 'debug';
  return 'trace';
}

/**
 * One logger for a command run: per-level JSON files in `logDir` and a console
 * stream. Every finished line is masked before any stream sees it, twice over:
 * every field named like a password, passphrase or private key, at any depth
 * (fields, child bindings, error context), and then every known secret value and
 * private key block wherever it appears (`redactSecrets`), so a secret that
 * slipped into a message or an error is masked everywhere.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const consoleLevel = consoleLevelFor(options.verbosity);
  const streams: { level: Level; stream: DestinationStream }[] = [];
  if (options.logDir) {
    mkdirSync(options.logDir, { recursive: true });
    for (const [level, fileName] of LEVEL_FILES) {
      // The debug file holds everything the console shows too, trace included when asked for.
      const fileLevel = level === 'debug' && consoleLevel === 'trace' ? 'trace' : level;
      streams.push({
        level: fileLevel,
        stream: pino.destination({ dest: join(options.logDir, fileName), sync: true }),
      });
    }
  }
  if (options.extraLogFile) {
    streams.push({
      level: 'info',
      stream: pino.destination({ dest: options.extraLogFile, sync: true, mkdir: true }),
    });
  }
  const consoleFd = options.consoleFd ?? 2;
  const consoleStream = options.pretty
    ? pretty({
        destination: lineClearingTerminal(consoleFd),
        sync: true,
        colorize: true,
        translateTime: 'HH:MM:ss',
        ignore: 'pid,hostname,app',
        hideObject: options.verbosity === 0,
        singleLine: true,
      })
    : pino.destination({ dest: consoleFd, sync: true });
  streams.push({ level: consoleLevel, stream: consoleStream });

  const secrets = options.secrets;
  return pino(
    {
      level: streams.some((entry) => entry.level === 'trace') ? 'trace' : 'debug',
      base: { pid: process.pid, app: options.app },
      timestamp: stdTimeFunctions.isoTime,
      serializers: { err: serializeError, error: serializeError },
      hooks: { streamWrite: (line: string) => redactSecrets(maskSecretFieldsInLine(line), secrets) },
    },
    pino.multistream(streams, { dedupe: false }),
  );
}

/**
 * Our errors log as their structured form (code, message, context); anything else
 * is a bug, and keeps its stack so the debug log says where it came from.
 */
function serializeError(value: unknown): unknown {
  if (value && typeof value === 'object' && 'toJSON' in value && typeof value.toJSON === 'function') {
    const json = (value as { toJSON(): Record<string, unknown> }).toJSON();
    const code = json.code;
    if (code === 'E_INTERNAL') {
      const error = value as unknown as Error;
      json.stack = error.cause instanceof Error ? error.cause.stack : error.stack;
    }
    return json;
  }
  return value instanceof Error ? stdSerializers.err(value) : value;
}

/**
 * The terminal stream for pretty lines: each line first clears the current one, so a
 * live progress line drawn with carriage returns never runs into a log line (the
 * progress line redraws itself on its next update).
 */
function lineClearingTerminal(fd: number): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      writeSync(fd, `\r\u001b[2K${chunk.toString()}`);
      done();
    },
  });
}
