/**
 * The logger writes to real files in a temp `logDir`; every line of every file is
 * parsed as JSON, and assertions are on the parsed objects: which levels land in
 * which file at each verbosity, that secrets never reach any file or the console,
 * and how errors are logged.
 */
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import { consoleLevelFor, createLogger, type Logger } from '../../../src/log/index.js';
import { makeTempDir, type TempDir } from '../../support/temp-dir.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
type LevelName = (typeof LEVELS)[number];
const LEVEL_NUMBER: Record<LevelName, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};
const FILES = ['all-debug.log', 'all-info.log', 'all-warning.log', 'all-error.log', 'console.log'] as const;

type LogLine = Record<string, unknown> & {
  level: number;
  msg?: string;
  err?: Record<string, unknown> & { message?: string; stack?: string };
};

let temp: TempDir;
let consoleFd: number | undefined;

beforeEach(async () => {
  temp = await makeTempDir('log-');
});
afterEach(async () => {
  if (consoleFd !== undefined) closeSync(consoleFd);
  consoleFd = undefined;
  await temp.remove();
});

/** A logger whose console goes to `console.log` in the temp folder, so it can be read back too. */
function makeLogger(
  verbosity: number,
  secrets: string[] = [],
  pretty = false,
): { logger: Logger; logDir: string } {
  const logDir = join(temp.path, 'log');
  consoleFd = openSync(join(temp.path, 'console.log'), 'a');
  const logger = createLogger({ app: 'fetch-files', logDir, verbosity, secrets, pretty, consoleFd });
  return { logger, logDir };
}

function readText(name: (typeof FILES)[number]): string {
  const path = name === 'console.log' ? join(temp.path, name) : join(temp.path, 'log', name);
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** Every line must be one JSON object: a line that does not parse fails the test. */
function readLines(name: (typeof FILES)[number]): LogLine[] {
  return readText(name)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogLine);
}

function levelsIn(name: (typeof FILES)[number]): LevelName[] {
  return readLines(name).map((line) => {
    const level = LEVELS.find((candidate) => LEVEL_NUMBER[candidate] === line.level);
    if (!level) throw new Error(`unknown level ${line.level} in ${name}`);
    return level;
  });
}

function logOneOfEach(logger: Logger): void {
  for (const level of LEVELS) logger[level]({ probe: level }, `${level} line`);
}

describe('which levels land in which file', () => {
  const fromInfo: LevelName[] = ['info', 'warn', 'error', 'fatal'];
  const fromWarn: LevelName[] = ['warn', 'error', 'fatal'];
  const fromError: LevelName[] = ['error', 'fatal'];

  it.each([
    { verbosity: 0, debugFile: ['debug', ...fromInfo], console: fromInfo },
    { verbosity: 1, debugFile: ['debug', ...fromInfo], console: ['debug', ...fromInfo] },
    { verbosity: 2, debugFile: LEVELS, console: LEVELS },
    { verbosity: 3, debugFile: LEVELS, console: LEVELS },
  ])('verbosity $verbosity', ({ verbosity, debugFile, console }) => {
    const { logger } = makeLogger(verbosity);
    logOneOfEach(logger);
    expect(levelsIn('all-debug.log')).toEqual(debugFile);
    expect(levelsIn('all-info.log')).toEqual(fromInfo);
    expect(levelsIn('all-warning.log')).toEqual(fromWarn);
    expect(levelsIn('all-error.log')).toEqual(fromError);
    expect(levelsIn('console.log')).toEqual(console);
  });

  it('writes one JSON object per line with time, app, pid, message and fields', () => {
    const { logger } = makeLogger(0);
    logger.info({ source: 'partner-a', sizeBytes: 42 }, 'fetched');
    const [line] = readLines('all-info.log');
    expect(line).toMatchObject({
      level: 30,
      app: 'fetch-files',
      pid: process.pid,
      source: 'partner-a',
      sizeBytes: 42,
      msg: 'fetched',
    });
    expect(new Date(line?.time as string).toISOString()).toBe(line?.time);
  });

  it('keeps child bindings on every line', () => {
    const { logger } = makeLogger(0);
    logger.child({ source: 'partner-a' }).warn('slow server');
    expect(readLines('all-warning.log')).toEqual([
      expect.objectContaining({ source: 'partner-a', msg: 'slow server', app: 'fetch-files' }),
    ]);
  });

  it('maps -v counts to console levels', () => {
    expect([0, 1, 2, 3, 5].map(consoleLevelFor)).toEqual(['info', 'debug', 'trace', 'trace', 'trace']);
  });

  it('appends to existing files instead of truncating them', () => {
    makeLogger(0).logger.info('first run');
    closeSync(consoleFd!);
    makeLogger(0).logger.info('second run');
    expect(readLines('all-info.log').map((line) => line.msg)).toEqual(['first run', 'second run']);
  });

  it('writes pretty human lines to a terminal while the files stay JSON', () => {
    const { logger } = makeLogger(0, [], true);
    logger.warn({ source: 'partner-a' }, 'slow server');
    const consoleText = readText('console.log');
    expect(consoleText).toContain('slow server');
    expect(() => {
      JSON.parse(consoleText.split('\n')[0] ?? '');
    }).toThrow();
    expect(readLines('all-warning.log')).toEqual([expect.objectContaining({ msg: 'slow server' })]);
  });
});

describe('secrets never reach a file', () => {
  const PASSWORD = 'Tr0ub4dor&3-"quoted"\\back';
  const PASSPHRASE = 'correct horse battery staple';
  const UNLISTED_PASSWORD = 'not-in-the-secret-list-pw';
  const PRIVATE_KEY = [
    '-----BEGIN OPENSSH PRIVATE KEY-----',
    'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
    'QyNTUxOQAAACDGf3Dq6gqZNyu7bOPZWSHOGY1ZiWjXKNPEaYhIukBOYQAAAJjZ2yOa2dsj',
    '-----END OPENSSH PRIVATE KEY-----',
  ].join('\n');
  const KEY_BODY = 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ';

  function logEverySecretWay(logger: Logger): void {
    logger.info(`connecting with password ${PASSWORD}`);
    logger.debug({ passphrase: PASSPHRASE }, 'unlocking key');
    logger.warn({ connection: { host: 'h', password: UNLISTED_PASSWORD } }, 'one level deep');
    logger.warn({ a: { b: { c: [{ sftpPassword: UNLISTED_PASSWORD, keep: 'visible' }] } } }, 'deep');
    logger.error({ privateKey: PRIVATE_KEY }, 'bad key field');
    logger.error(`key material in a message: ${PRIVATE_KEY}`);
    logger.error(`a cut-off key: ${PRIVATE_KEY.slice(0, 120)}`);
    logger.error(
      new SyncError('E_AUTH', `authentication failed using ${PASSPHRASE}`, {
        host: 'feeds@h:22',
        op: 'connect',
        password: UNLISTED_PASSWORD,
      }),
    );
    logger.error(new Error(`socket said ${PASSWORD}`), 'plain error');
    logger.child({ auth: { password: UNLISTED_PASSWORD } }).info('child with a password binding');
  }

  it.each([0, 2])('at verbosity %d, in every file and on the console', (verbosity) => {
    const { logger } = makeLogger(verbosity, [PASSWORD, PASSPHRASE]);
    logEverySecretWay(logger);
    for (const name of FILES) {
      const text = readText(name);
      expect(text.length, name).toBeGreaterThan(0);
      for (const secret of [
        PASSWORD,
        JSON.stringify(PASSWORD).slice(1, -1),
        PASSPHRASE,
        UNLISTED_PASSWORD,
        KEY_BODY,
      ]) {
        expect(text.includes(secret), `${name} holds ${secret}`).toBe(false);
      }
      expect(text).not.toContain('BEGIN OPENSSH PRIVATE KEY');
    }
  });

  it('masks each one as [REDACTED] where it was', () => {
    const { logger } = makeLogger(1, [PASSWORD, PASSPHRASE]);
    logEverySecretWay(logger);
    const lines = readLines('all-debug.log');
    const byMsg = (msg: string): LogLine => {
      const found = lines.find((line) => line.msg?.startsWith(msg));
      if (!found) throw new Error(`no line starting "${msg}"`);
      return found;
    };
    expect(byMsg('connecting with').msg).toBe('connecting with password [REDACTED]');
    expect(byMsg('unlocking key')).toMatchObject({ passphrase: '[REDACTED]' });
    expect(byMsg('one level deep')).toMatchObject({ connection: { host: 'h', password: '[REDACTED]' } });
    expect(byMsg('deep')).toMatchObject({
      a: { b: { c: [{ sftpPassword: '[REDACTED]', keep: 'visible' }] } },
    });
    expect(byMsg('bad key field')).toMatchObject({ privateKey: '[REDACTED]' });
    expect(byMsg('key material').msg).toBe('key material in a message: [REDACTED]');
    expect(byMsg('a cut-off key').msg).toBe('a cut-off key: [REDACTED]');
    expect(byMsg('authentication failed').err).toMatchObject({
      code: 'E_AUTH',
      message: 'authentication failed using [REDACTED]',
      host: 'feeds@h:22',
      password: '[REDACTED]',
    });
    expect(byMsg('plain error').err?.message).toBe('socket said [REDACTED]');
    expect(byMsg('child with')).toMatchObject({ auth: { password: '[REDACTED]' } });
  });

  it('does not change the object that was logged', () => {
    const { logger } = makeLogger(0);
    const fields = { connection: { password: UNLISTED_PASSWORD } };
    logger.info(fields, 'logged');
    expect(fields.connection.password).toBe(UNLISTED_PASSWORD);
  });
});

describe('errors', () => {
  it('an E_INTERNAL error keeps its stack in the debug log', () => {
    const { logger } = makeLogger(0);
    const bug = new TypeError("Cannot read properties of undefined (reading 'size')");
    logger.error(
      new SyncError('E_INTERNAL', 'unexpected failure while planning', { op: 'plan', cause: bug }),
    );
    const [line] = readLines('all-debug.log');
    expect(line?.err).toMatchObject({
      code: 'E_INTERNAL',
      message: 'unexpected failure while planning',
      op: 'plan',
      cause: { message: bug.message },
    });
    expect(line?.err?.stack).toContain('TypeError: Cannot read properties of undefined');
    expect(line?.err?.stack).toMatch(/\n\s+at /);
  });

  it('a plain Error (a bug) keeps its type and stack', () => {
    const { logger } = makeLogger(0);
    logger.error({ err: new RangeError('index out of range') }, 'crashed');
    const [line] = readLines('all-error.log');
    expect(line?.err).toMatchObject({ type: 'RangeError', message: 'index out of range' });
    expect(line?.err?.stack).toMatch(/RangeError: index out of range\n\s+at /);
  });

  it('a SyncError logs its code and context, and no stack', () => {
    const { logger } = makeLogger(0);
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:2222'), { code: 'ECONNREFUSED' });
    const err = new SyncError('E_CONNECTION', 'cannot reach feeds@127.0.0.1:2222', {
      op: 'connect',
      host: 'feeds@127.0.0.1:2222',
      source: 'partner-a',
      hint: 'check that the server is up',
      cause,
    });
    logger.warn({ err, attempt: 2 }, 'will retry');
    const [line] = readLines('all-warning.log');
    expect(line).toMatchObject({ msg: 'will retry', attempt: 2 });
    expect(line?.err).toEqual({
      code: 'E_CONNECTION',
      message: 'cannot reach feeds@127.0.0.1:2222',
      op: 'connect',
      host: 'feeds@127.0.0.1:2222',
      source: 'partner-a',
      hint: 'check that the server is up',
      cause: { message: 'connect ECONNREFUSED 127.0.0.1:2222', code: 'ECONNREFUSED' },
    });
  });

  it('a config error logs every problem line', () => {
    const { logger } = makeLogger(0);
    const problems = [
      'etc/f.yml: sources[0].port: expected an integer 1–65535, got "abc"',
      'etc/f.yml: hots: unknown key',
    ];
    logger.error(new SyncError('E_CONFIG', 'etc/f.yml: 2 problems in the configuration', { problems }));
    const [line] = readLines('all-error.log');
    expect(line?.err).toMatchObject({ code: 'E_CONFIG', problems });
  });
});

describe('without a log folder', () => {
  it('writes only the console', () => {
    consoleFd = openSync(join(temp.path, 'console.log'), 'a');
    const logger = createLogger({ app: 'copy-files', verbosity: 0, secrets: [], pretty: false, consoleFd });
    logger.info('console only');
    expect(readLines('console.log')).toEqual([
      expect.objectContaining({ msg: 'console only', app: 'copy-files' }),
    ]);
    expect(existsSync(join(temp.path, 'log'))).toBe(false);
  });
});
