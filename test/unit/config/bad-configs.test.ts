/**
 * Table tests of configs that must be refused. Each row is a YAML text or a mutation
 * of a valid base, and the line the operator must see: `FILE: key.path: message`
 * (or `FILE:line:column: …` for YAML syntax). A row passes only when that exact key
 * path heads a problem line containing the expected fragment.
 */
import { isAbsolute, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Env, loadFetcherConfig } from '../../../src/config/index.js';
import {
  type ConfigKindName,
  makeWorkspace,
  mutateBase,
  problemsOf,
  items,
  type RawTree,
  type Workspace,
  writeConfig,
} from './config-test-kit.js';

interface BadConfigRow {
  name: string;
  kind: ConfigKindName;
  /** The YAML text, or a change to the kind's valid base. */
  text?: string;
  mutate?: (tree: RawTree) => void;
  env?: (workspace: Workspace) => Env;
  /** The key path that heads the line; `:L:C` for a YAML position. */
  keyPath: string;
  fragment: string;
  /** Key paths that must not be reported (no noise around the real mistake). */
  notReported?: string[];
  /** The exact number of problem lines, when the row is about "one line per mistake". */
  count?: number;
}

const FINGERPRINT = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';

const source = (tree: RawTree) => items(tree, 'sources')[0]!;
const destination = (tree: RawTree) => items(tree, 'destinations')[0]!;
const sftpDestination = {
  name: 'partner-upload',
  url: 'sftp://upload@files.example.net/inbound',
  private_key: '~/.ssh/id_ed25519',
  known_hosts: '~/.ssh/known_hosts',
};

const ROWS: BadConfigRow[] = [
  // ---- YAML and file shape ----
  {
    name: 'YAML syntax error gives line and column',
    kind: 'fetcher',
    text: 'incoming: data/incoming\nsources:\n  - name: partner-a\n    host: [sftp.example.org\n    port: 22\n',
    keyPath: ':5:5',
    fragment: 'YAML syntax error',
  },
  {
    name: 'a key given twice is a YAML error at its second place',
    kind: 'copier',
    text: 'incoming: a\nincoming: b\n',
    keyPath: ':2:1',
    fragment: 'duplicated mapping key',
  },
  {
    name: 'empty file',
    kind: 'fetcher',
    text: '',
    keyPath: '(top level)',
    fragment: 'got an empty file',
  },
  {
    name: 'file of comments only is empty too',
    kind: 'copier',
    text: '# nothing here yet\n\n',
    keyPath: '(top level)',
    fragment: 'expected a mapping of keys (incoming:, destinations: …), got an empty file',
  },
  {
    name: 'a list instead of a mapping',
    kind: 'fetcher',
    text: '- incoming: data\n',
    keyPath: '(top level)',
    fragment: 'got a list',
  },

  // ---- unknown keys, with the nearest valid key ----
  {
    name: 'typo in a source key suggests the real key, and only that line',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).hots = source(t).host;
      delete source(t).host;
    },
    keyPath: 'sources[0].hots',
    fragment: 'unknown key; did you mean "host"?',
    notReported: ['sources[0].host'],
    count: 1,
  },
  {
    name: 'typo in a top-level key',
    kind: 'fetcher',
    mutate: (t) => {
      t.intervall = '5s';
    },
    keyPath: 'intervall',
    fragment: 'unknown key; did you mean "interval"?',
  },
  {
    name: 'misspelt required key is not also reported missing',
    kind: 'copier',
    mutate: (t) => {
      t.incomming = t.incoming;
      delete t.incoming;
    },
    keyPath: 'incomming',
    fragment: 'did you mean "incoming"?',
    notReported: ['incoming'],
  },
  {
    name: 'typo in a destination key',
    kind: 'copier',
    mutate: (t) => {
      destination(t).on_conflit = 'skip';
    },
    keyPath: 'destinations[0].on_conflit',
    fragment: 'did you mean "on_conflict"?',
  },
  {
    name: 'a key nothing resembles',
    kind: 'fetcher',
    mutate: (t) => {
      t.colour = 'blue';
    },
    keyPath: 'colour',
    fragment: 'unknown key; remove it or check the spelling',
  },

  // ---- wrong types, one of each kind of value ----
  {
    name: 'integer: the issue text example',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).port = 'abc';
    },
    keyPath: 'sources[0].port',
    fragment: 'expected an integer 1–65535, got "abc"',
  },
  {
    name: 'integer out of range',
    kind: 'fetcher',
    mutate: (t) => {
      t.concurrency_limit = 0;
    },
    keyPath: 'concurrency_limit',
    fragment: 'expected an integer 1–256, got 0',
  },
  {
    name: 'boolean written as yes',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).recursive = 'yes';
    },
    keyPath: 'sources[0].recursive',
    fragment: 'expected true or false, got "yes"',
  },
  {
    name: 'bare number as a duration',
    kind: 'fetcher',
    mutate: (t) => {
      t.interval = 60;
    },
    keyPath: 'interval',
    fragment: 'expected a duration such as 500ms, 30s, 5m or 2h, got 60 (add a unit, as in 60s)',
  },
  {
    name: 'duration in words',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).min_age = '5 minutes';
    },
    keyPath: 'sources[0].min_age',
    fragment: 'got "5 minutes"',
  },
  {
    name: 'a zero deadline',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).connect_timeout = 0;
    },
    keyPath: 'sources[0].connect_timeout',
    fragment: 'expected a duration above 0, such as 30s, got 0',
  },
  {
    name: 'a pause longer than a timer can wait',
    kind: 'copier',
    mutate: (t) => {
      t.interval = '30d';
    },
    keyPath: 'interval',
    fragment: 'expected a duration of at most 24d, got "30d"',
  },
  {
    name: 'a read size of nothing',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).chunk_size = 0;
    },
    keyPath: 'sources[0].chunk_size',
    fragment: 'expected a size of at least 1 KiB, got 0',
  },
  {
    name: 'size with an unknown unit',
    kind: 'copier',
    mutate: (t) => {
      destination(t).min_free_space = '5 parsecs';
    },
    keyPath: 'destinations[0].min_free_space',
    fragment: 'expected a size such as 512KiB, 100MiB or 1GiB, got "5 parsecs"',
  },
  {
    name: 'word outside its set',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).after_fetch = 'nuke';
    },
    keyPath: 'sources[0].after_fetch',
    fragment: 'expected one of keep, delete, move, got "nuke"',
  },
  {
    name: 'glob list item that is not text names its index',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).include = ['*.csv', 7];
    },
    keyPath: 'sources[0].include[1]',
    fragment: 'expected a glob pattern such as "*.csv", got 7',
  },
  {
    name: 'glob list given as a mapping',
    kind: 'copier',
    mutate: (t) => {
      destination(t).exclude = { pattern: '*.tmp' };
    },
    keyPath: 'destinations[0].exclude',
    fragment: 'expected a glob pattern or a list of them, got a mapping',
  },
  {
    name: 'file mode as a bare number (YAML reads 0640 as 640)',
    kind: 'fetcher',
    text: `${mutateBase('fetcher', () => {})}file_mode: 0640\n`,
    keyPath: 'file_mode',
    fragment: 'expected an octal mode in quotes such as "0640", got 640',
  },
  {
    name: 'empty value',
    kind: 'fetcher',
    text: `${mutateBase('fetcher', () => {})}archive_layout:\n`,
    keyPath: 'archive_layout',
    fragment: 'expected a non-empty string, got null',
  },
  {
    name: 'a name with a space',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).name = 'partner a';
    },
    keyPath: 'sources[0].name',
    fragment: 'expected a name of letters, digits',
  },
  {
    name: 'sources as text',
    kind: 'fetcher',
    mutate: (t) => {
      t.sources = 'partner-a';
    },
    keyPath: 'sources',
    fragment: 'expected a list of sources, got "partner-a"',
  },
  {
    name: 'a source that is not a mapping',
    kind: 'fetcher',
    mutate: (t) => {
      (items(t, 'sources') as unknown[]).push('partner-b');
    },
    keyPath: 'sources[1]',
    fragment: 'expected a source: a mapping',
  },
  {
    name: 'no sources',
    kind: 'fetcher',
    mutate: (t) => {
      t.sources = [];
    },
    keyPath: 'sources',
    fragment: 'expected at least one source',
  },
  {
    name: 'destinations as a mapping',
    kind: 'copier',
    mutate: (t) => {
      t.destinations = { warehouse: { path: 'out' } };
    },
    keyPath: 'destinations',
    fragment: 'expected a list of destinations, got a mapping',
  },

  // ---- required keys ----
  {
    name: 'missing incoming',
    kind: 'fetcher',
    mutate: (t) => {
      delete t.incoming;
    },
    keyPath: 'incoming',
    fragment: 'required key is missing',
  },
  {
    name: 'missing remote_dir',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).remote_dir;
    },
    keyPath: 'sources[0].remote_dir',
    fragment: 'required key is missing',
  },
  {
    name: 'missing username is one line that says what it is for',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).username;
    },
    keyPath: 'sources[0].username',
    fragment: 'required key is missing: the user to log in as',
    count: 1,
  },
  {
    name: 'local destination without path',
    kind: 'copier',
    mutate: (t) => {
      delete destination(t).path;
    },
    keyPath: 'destinations[0].path',
    fragment: 'required key is missing: a local folder, or url: sftp://user@host/folder',
  },

  // ---- semantic rules: names and folders ----
  {
    name: 'two sources with one name',
    kind: 'fetcher',
    mutate: (t) => {
      items(t, 'sources').push({ ...source(t) });
    },
    keyPath: 'sources[1].name',
    fragment: '"partner-a" is already the name of sources[0]: names must be unique',
  },
  {
    name: 'two destinations with one name',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ name: 'warehouse', path: 'data/out/other' });
    },
    keyPath: 'destinations[1].name',
    fragment: 'is already the name of destinations[0]',
  },
  {
    name: 'incoming inside archive',
    kind: 'fetcher',
    mutate: (t) => {
      t.incoming = 'data/archive/incoming';
    },
    keyPath: 'incoming',
    fragment: 'is inside archive',
  },
  {
    name: 'archive inside incoming',
    kind: 'fetcher',
    mutate: (t) => {
      t.archive = 'data/incoming/archive';
    },
    keyPath: 'incoming',
    fragment: 'contains archive',
  },
  {
    name: 'archive and incoming the same folder',
    kind: 'fetcher',
    mutate: (t) => {
      t.archive = './data/incoming/';
    },
    keyPath: 'incoming',
    fragment: 'is the same folder as archive',
  },
  {
    name: 'state_dir inside incoming',
    kind: 'fetcher',
    mutate: (t) => {
      t.state_dir = 'data/incoming/.state';
    },
    keyPath: 'state_dir',
    fragment: 'is inside incoming',
  },
  {
    name: 'log_dir inside archive',
    kind: 'fetcher',
    mutate: (t) => {
      t.log_dir = 'data/archive/log';
    },
    keyPath: 'log_dir',
    fragment: 'is inside archive',
  },
  {
    name: 'copier state_dir inside incoming',
    kind: 'copier',
    mutate: (t) => {
      t.state_dir = 'data/incoming/state';
    },
    keyPath: 'state_dir',
    fragment: 'is inside incoming',
  },
  {
    name: 'destination inside incoming',
    kind: 'copier',
    mutate: (t) => {
      destination(t).path = 'data/incoming/out';
    },
    keyPath: 'destinations[0].path',
    fragment: 'is inside incoming',
  },
  {
    name: 'two local destinations on one folder (written two ways)',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ name: 'copy', path: 'data/out/../out/warehouse/' });
    },
    keyPath: 'destinations[1].path',
    fragment: 'same folder as destinations[0].path',
  },
  {
    name: 'done_dir inside incoming',
    kind: 'copier',
    mutate: (t) => {
      t.done_dir = 'data/incoming/done';
    },
    keyPath: 'done_dir',
    fragment: 'is inside incoming',
  },
  {
    name: 'unmatched: move without unmatched_dir',
    kind: 'copier',
    mutate: (t) => {
      t.unmatched = 'move';
    },
    keyPath: 'unmatched_dir',
    fragment: 'unmatched: move needs unmatched_dir',
  },

  // ---- semantic rules: after_fetch ----
  {
    name: 'after_fetch: move without move_to',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).after_fetch = 'move';
    },
    keyPath: 'sources[0].move_to',
    fragment: 'after_fetch: move needs move_to',
  },
  {
    name: 'move_to without after_fetch: move',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).move_to = '/outbound/done';
    },
    keyPath: 'sources[0].move_to',
    fragment: 'move_to is only used with after_fetch: move',
  },
  {
    name: 'move_to is remote_dir itself',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).after_fetch = 'move';
      source(t).move_to = '/outbound/';
    },
    keyPath: 'sources[0].move_to',
    fragment: 'move_to is remote_dir itself',
  },
  {
    name: 'min_size above max_size',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).min_size = '2MiB';
      source(t).max_size = '1MiB';
    },
    keyPath: 'sources[0].min_size',
    fragment: 'min_size is larger than max_size',
  },

  // ---- semantic rules: authentication ----
  {
    name: 'two auth methods',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).password_env = 'FEEDS_PASSWORD';
    },
    keyPath: 'sources[0]',
    fragment:
      'set exactly one of private_key, password_env or agent: true (found private_key and password_env)',
  },
  {
    name: 'no auth method',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).private_key;
    },
    keyPath: 'sources[0]',
    fragment: '(found none)',
  },
  {
    name: 'password_env naming an unset variable',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).private_key;
      source(t).password_env = 'PARTNER_A_PASSWORD';
    },
    keyPath: 'sources[0].password_env',
    fragment: 'environment variable PARTNER_A_PASSWORD is not set: export it before starting',
  },
  {
    name: 'passphrase_env naming an unset variable',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).passphrase_env = 'KEY_PASSPHRASE';
    },
    keyPath: 'sources[0].passphrase_env',
    fragment: 'environment variable KEY_PASSPHRASE is not set',
  },
  {
    name: 'passphrase_env without a private key',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).private_key;
      source(t).agent = true;
      source(t).passphrase_env = 'FEEDS_PASSWORD';
    },
    keyPath: 'sources[0].passphrase_env',
    fragment: 'passphrase_env is for an encrypted private_key',
  },
  {
    name: 'agent without SSH_AUTH_SOCK',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).private_key;
      source(t).agent = true;
    },
    env: (w) => ({ HOME: w.home }),
    keyPath: 'sources[0].agent',
    fragment: 'SSH_AUTH_SOCK is not set',
  },
  {
    name: 'private key file that does not exist',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).private_key = '~/.ssh/id_missing';
    },
    keyPath: 'sources[0].private_key',
    fragment: '/home/.ssh/id_missing: check the path',
  },

  // ---- semantic rules: host keys ----
  {
    name: 'known_hosts and host_key together',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).host_key = FINGERPRINT;
    },
    keyPath: 'sources[0]',
    fragment:
      'set exactly one of known_hosts or host_key, or insecure_skip_host_key_check: true (found known_hosts and host_key)',
  },
  {
    name: 'no host key check at all',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).known_hosts;
    },
    keyPath: 'sources[0]',
    fragment: 'set exactly one of known_hosts or host_key',
  },
  {
    name: 'insecure_skip_host_key_check with a known_hosts',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).insecure_skip_host_key_check = true;
    },
    keyPath: 'sources[0].insecure_skip_host_key_check',
    fragment: 'conflicts with known_hosts',
  },
  {
    name: 'insecure_skip_host_key_check: false is no opt-out',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).known_hosts;
      source(t).insecure_skip_host_key_check = false;
    },
    keyPath: 'sources[0]',
    fragment: '(found none)',
  },
  {
    name: 'bad host_key fingerprint',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).known_hosts;
      source(t).host_key = 'MD5:aa:bb:cc';
    },
    keyPath: 'sources[0].host_key',
    fragment: 'expected a fingerprint such as "SHA256:" and 43 base64 characters',
  },
  {
    name: 'one bad fingerprint in a list names its index',
    kind: 'fetcher',
    mutate: (t) => {
      delete source(t).known_hosts;
      source(t).host_key = [FINGERPRINT, 'SHA256:short'];
    },
    keyPath: 'sources[0].host_key[1]',
    fragment: 'got "SHA256:short"',
  },
  {
    name: 'known_hosts file that does not exist',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).known_hosts = 'no/such/known_hosts';
    },
    keyPath: 'sources[0].known_hosts',
    fragment: 'cannot read',
  },

  // ---- loop ----
  {
    name: 'schedule and interval together',
    kind: 'fetcher',
    mutate: (t) => {
      t.interval = '5m';
      t.schedule = '*/5 * * * *';
    },
    keyPath: 'schedule',
    fragment: 'set interval or schedule, not both',
  },
  {
    name: 'bad cron expression',
    kind: 'copier',
    mutate: (t) => {
      t.schedule = 'every monday';
    },
    keyPath: 'schedule',
    fragment: 'not a cron expression',
  },
  {
    name: 'bad time zone',
    kind: 'copier',
    mutate: (t) => {
      t.schedule = '0 3 * * *';
      t.time_zone = 'Mars/Olympus_Mons';
    },
    keyPath: 'time_zone',
    fragment: 'unknown time zone "Mars/Olympus_Mons": use an IANA name',
  },

  // ---- layouts ----
  {
    name: 'layout with an unknown placeholder',
    kind: 'fetcher',
    mutate: (t) => {
      t.archive_layout = '{source}/{year}/{path}';
    },
    keyPath: 'archive_layout',
    fragment: 'unknown placeholder {year}',
  },
  {
    name: 'layout that would put every file on one name',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).incoming_layout = '{source}/{date}';
    },
    keyPath: 'sources[0].incoming_layout',
    fragment: 'a layout needs {path} or {name}',
  },
  {
    name: 'layout that climbs out of its folder',
    kind: 'fetcher',
    mutate: (t) => {
      t.incoming_layout = '../{path}';
    },
    keyPath: 'incoming_layout',
    fragment: 'no leading "/" and no ".."',
  },

  // ---- ${ENV} ----
  {
    name: 'unset ${ENV} is one line at its key',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).port = '${PARTNER_PORT}';
    },
    keyPath: 'sources[0].port',
    fragment:
      'environment variable PARTNER_PORT is not set (used as ${PARTNER_PORT}): export it, or write ${PARTNER_PORT:-default}',
    count: 1,
  },
  {
    name: 'unset ${ENV} inside a list',
    kind: 'copier',
    mutate: (t) => {
      destination(t).include = ['*.csv', '${EXTRA_PATTERN}'];
    },
    keyPath: 'destinations[0].include[1]',
    fragment: 'environment variable EXTRA_PATTERN is not set',
  },
  {
    name: 'empty ${ENV} counts as unset',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).host = '${PARTNER_HOST}';
    },
    env: (w) => ({ ...w.env, PARTNER_HOST: '' }),
    keyPath: 'sources[0].host',
    fragment: 'environment variable PARTNER_HOST is empty',
  },
  {
    name: 'a ${ that is no placeholder',
    kind: 'fetcher',
    mutate: (t) => {
      source(t).remote_dir = '/out/${lower-case}';
    },
    keyPath: 'sources[0].remote_dir',
    fragment: 'write $${ for a literal ${',
  },

  // ---- SFTP destinations ----
  {
    name: 'password in an SFTP URL is refused',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({
        ...sftpDestination,
        url: 'sftp://upload:hunter2@files.example.net/inbound',
      });
    },
    keyPath: 'destinations[1].url',
    fragment: 'a password in the URL is not allowed',
  },
  {
    name: 'URL of another scheme',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ ...sftpDestination, url: 'https://files.example.net/inbound' });
    },
    keyPath: 'destinations[1].url',
    fragment: 'expected an sftp:// URL, got "https://files.example.net/inbound"',
  },
  {
    name: 'text that is no URL',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ ...sftpDestination, url: 'files.example.net:/inbound' });
    },
    keyPath: 'destinations[1].url',
    fragment: 'expected',
  },
  {
    name: 'URL without a remote folder',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ ...sftpDestination, url: 'sftp://upload@files.example.net' });
    },
    keyPath: 'destinations[1].url',
    fragment: 'the URL names no remote folder',
  },
  {
    name: 'url and host together',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ ...sftpDestination, host: 'files.example.net' });
    },
    keyPath: 'destinations[1].url',
    fragment: 'set either url or host',
  },
  {
    name: 'port in the URL and as a key',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({
        ...sftpDestination,
        url: 'sftp://upload@files.example.net:2222/in',
        port: 22,
      });
    },
    keyPath: 'destinations[1].port',
    fragment: 'the url already gives the port: keep one of them',
  },
  {
    name: 'SFTP destination by host without a remote folder',
    kind: 'copier',
    mutate: (t) => {
      const { url: _url, ...rest } = sftpDestination;
      items(t, 'destinations').push({ ...rest, host: 'files.example.net', username: 'upload' });
    },
    keyPath: 'destinations[1].path',
    fragment: 'required key is missing: the remote folder',
  },
  {
    name: 'SFTP destination without auth',
    kind: 'copier',
    mutate: (t) => {
      const { private_key: _key, ...rest } = sftpDestination;
      items(t, 'destinations').push(rest);
    },
    keyPath: 'destinations[1]',
    fragment: 'set exactly one of private_key, password_env or agent: true (found none)',
  },
  {
    name: 'SFTP-only key on a local destination',
    kind: 'copier',
    mutate: (t) => {
      destination(t).private_key = '~/.ssh/id_ed25519';
    },
    keyPath: 'destinations[0].private_key',
    fragment: 'applies to SFTP destinations only',
  },
  {
    name: 'hardlink to an SFTP destination',
    kind: 'copier',
    mutate: (t) => {
      items(t, 'destinations').push({ ...sftpDestination, link: 'hardlink' });
    },
    keyPath: 'destinations[1].link',
    fragment: 'link: hardlink needs a local destination',
  },
  {
    name: 'bad fingerprint on an SFTP destination',
    kind: 'copier',
    mutate: (t) => {
      const { known_hosts: _kh, ...rest } = sftpDestination;
      items(t, 'destinations').push({ ...rest, host_key: 'SHA256:nope' });
    },
    keyPath: 'destinations[1].host_key',
    fragment: 'expected a fingerprint such as "SHA256:"',
  },

  // ---- odd keys ----
  {
    name: '__proto__ is just an unknown key',
    kind: 'fetcher',
    text: `${mutateBase('fetcher', () => {})}__proto__:\n  incoming: x\n`,
    keyPath: '__proto__',
    fragment: 'unknown key',
  },
];

describe('bad configs are refused with the key path and what was expected', () => {
  let workspace: Workspace;
  beforeAll(async () => {
    workspace = await makeWorkspace();
  });
  afterAll(async () => {
    await workspace.root.remove();
  });

  it('has at least 40 rows across both kinds', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(40);
    expect(ROWS.filter((row) => row.kind === 'copier').length).toBeGreaterThanOrEqual(15);
  });

  it.each(ROWS.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    const text = row.text ?? mutateBase(row.kind, row.mutate ?? (() => {}));
    const env = row.env ? row.env(workspace) : workspace.env;
    const { configPath, problems } = await problemsOf(workspace, row.kind, text, env);
    const head = row.keyPath.startsWith(':')
      ? `${configPath}${row.keyPath}: `
      : `${configPath}: ${row.keyPath}: `;
    const match = problems.find((line) => line.startsWith(head) && line.includes(row.fragment));
    expect(match, `no line "${head}…${row.fragment}…" among:\n${problems.join('\n')}`).toBeDefined();
    for (const keyPath of row.notReported ?? []) {
      expect(problems.filter((line) => line.startsWith(`${configPath}: ${keyPath}: `))).toEqual([]);
    }
    if (row.count !== undefined) expect(problems).toHaveLength(row.count);
  });
});

describe('every problem at once', () => {
  let workspace: Workspace;
  beforeAll(async () => {
    workspace = await makeWorkspace();
  });
  afterAll(async () => {
    await workspace.root.remove();
  });

  it('reports schema, unknown-key, environment and rule problems of one file together', async () => {
    const text = mutateBase('fetcher', (t) => {
      t.intervall = '5s';
      t.state_dir = 'data/incoming/state';
      source(t).port = 'abc';
      source(t).after_fetch = 'move';
      items(t, 'sources').push({ ...source(t), name: 'partner-a', host: '${PARTNER_B_HOST}', verify: 'md5' });
    });
    const { configPath, problems, error } = await problemsOf(workspace, 'fetcher', text);
    const expected = [
      'intervall: unknown key; did you mean "interval"?',
      'state_dir: ',
      'sources[0].port: expected an integer 1–65535, got "abc"',
      'sources[0].move_to: after_fetch: move needs move_to',
      'sources[1].name: "partner-a" is already the name of sources[0]',
      'sources[1].host: environment variable PARTNER_B_HOST is not set',
      'sources[1].verify: expected one of size, sidecar, got "md5"',
      'sources[1].port: expected an integer 1–65535, got "abc"',
      'sources[1].move_to: after_fetch: move needs move_to',
    ];
    for (const fragment of expected) {
      expect(problems.some((line) => line.startsWith(`${configPath}: ${fragment}`))).toBe(true);
    }
    expect(problems).toHaveLength(expected.length);
    expect(error.message).toBe(`${configPath}: ${expected.length} problems in the configuration`);
    expect(error.context.path).toBe(configPath);
  });

  it('names the file as it was given on the command line, relative or not', async () => {
    const missing = join(workspace.configDir, 'no-such.yml');
    await expect(loadFetcherConfig(missing, workspace.env)).rejects.toMatchObject({
      code: 'E_CONFIG',
      context: {
        problems: [
          `${missing}: cannot read the file (no such file): pass --config with the path of your config`,
        ],
      },
    });
    const written = await writeConfig(
      workspace,
      mutateBase('fetcher', (t) => void (t.intervall = '5s')),
    );
    const relativePath = relative(process.cwd(), written);
    expect(isAbsolute(relativePath)).toBe(false);
    await expect(loadFetcherConfig(relativePath, workspace.env)).rejects.toMatchObject({
      context: { problems: [`${relativePath}: intervall: unknown key; did you mean "interval"?`] },
    });
  });
});
