import { accessSync, constants } from 'node:fs';
import { relative, isAbsolute } from 'node:path';
import { Cron } from 'croner';
import { formatKeyPath } from './key-path.js';
import { parseSftpUrl } from './parse-sftp-url.js';
import { parseSize } from './parse-size.js';
import { type LoadContext, resolveLocalPath, trimRemotePath } from './schema-parts.js';

export interface ConfigProblem {
  keyPath: string;
  message: string;
}

type RawMap = Record<string, unknown>;

/** How every "key absent" message starts, so the loader can keep one line per missing key. */
export const MISSING = 'required key is missing';

/**
 * Rules that span keys or touch the machine (files that must exist, variables that
 * must be set, folders that must not nest). They read the raw tree defensively so
 * they can run even when the schema found problems: the operator sees every mistake
 * in one go.
 */
export function fetcherRules(tree: unknown, ctx: LoadContext): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const root = asMap(tree);
  if (!root) return problems;
  checkLoop(root, problems);

  const incoming = localPathAt(root, 'incoming', ctx);
  const archive = localPathAt(root, 'archive', ctx);
  if (incoming && archive) checkApart('incoming', incoming, 'archive', archive, problems);
  const dataDirs: [string, string][] = [];
  if (incoming) dataDirs.push(['incoming', incoming]);
  if (archive) dataDirs.push(['archive', archive]);
  checkStateApart(root, ctx, dataDirs, problems);
  for (const key of ['incoming_layout', 'archive_layout']) checkLayout(root[key], [key], problems);

  const sources = Array.isArray(root.sources) ? root.sources : [];
  checkUniqueNames(sources, 'sources', problems);
  sources.forEach((item, index) => {
    const source = asMap(item);
    if (!source) return;
    const path = ['sources', index];
    checkConnection(source, path, ctx, problems);
    checkLayout(source.incoming_layout, [...path, 'incoming_layout'], problems);
    if (source.after_fetch === 'move' && !isText(source.move_to)) {
      problems.push(
        at(
          [...path, 'move_to'],
          'after_fetch: move needs move_to (the remote folder to move fetched files into)',
        ),
      );
    }
    if (
      isText(source.move_to) &&
      isText(source.remote_dir) &&
      trimRemotePath(source.move_to.trim()) === trimRemotePath(source.remote_dir.trim())
    ) {
      problems.push(
        at([...path, 'move_to'], 'move_to is remote_dir itself: name another folder (e.g. remote_dir/done)'),
      );
    }
    if (source.move_to !== undefined && source.after_fetch !== 'move') {
      problems.push(
        at(
          [...path, 'move_to'],
          'move_to is only used with after_fetch: move; remove it or set after_fetch: move',
        ),
      );
    }
    if (typeof source.min_size === 'string' || typeof source.min_size === 'number') {
      const min = sizeOf(source.min_size);
      const max = sizeOf(source.max_size);
      if (min !== undefined && max !== undefined && min > max) {
        problems.push(
          at([...path, 'min_size'], 'min_size is larger than max_size: no file could be selected'),
        );
      }
    }
  });
  return problems;
}

export function copierRules(tree: unknown, ctx: LoadContext): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const root = asMap(tree);
  if (!root) return problems;
  checkLoop(root, problems);

  const incoming = localPathAt(root, 'incoming', ctx);
  const dataDirs: [string, string][] = incoming ? [['incoming', incoming]] : [];
  for (const key of ['done_dir', 'unmatched_dir']) {
    const dir = localPathAt(root, key, ctx);
    if (dir && incoming) checkApart(key, dir, 'incoming', incoming, problems);
  }
  if (root.unmatched === 'move' && !isText(root.unmatched_dir)) {
    problems.push(
      at(['unmatched_dir'], 'unmatched: move needs unmatched_dir (the folder to move unmatched files into)'),
    );
  }

  const destinations = Array.isArray(root.destinations) ? root.destinations : [];
  checkUniqueNames(destinations, 'destinations', problems);
  const localDestinations: [string, string][] = [];
  destinations.forEach((item, index) => {
    const destination = asMap(item);
    if (!destination) return;
    const path = ['destinations', index];
    const isSftp = destination.url !== undefined || destination.host !== undefined;
    if (!isSftp) {
      const dir = localPathAt(destination, 'path', ctx);
      if (!dir) {
        problems.push(at([...path, 'path'], `${MISSING}: a local folder, or url: sftp://user@host/folder`));
        return;
      }
      for (const key of SFTP_ONLY_KEYS) {
        if (destination[key] !== undefined) {
          problems.push(
            at([...path, key], `${key} applies to SFTP destinations only; add url or host, or remove ${key}`),
          );
        }
      }
      const label = `destinations[${index}].path`;
      if (incoming) checkApart(label, dir, 'incoming', incoming, problems);
      for (const [otherLabel, otherDir] of localDestinations) {
        if (dir === otherDir)
          problems.push(
            at(
              [...path, 'path'],
              `same folder as ${otherLabel}: two destinations would overwrite each other`,
            ),
          );
      }
      localDestinations.push([label, dir]);
      return;
    }
    const { merged } = mergeSftpUrlKeys(
      destination,
      path,
      problems,
      'the remote folder of this SFTP destination',
    );
    if (destination.link === 'hardlink') {
      problems.push(
        at([...path, 'link'], 'link: hardlink needs a local destination on the same file system as incoming'),
      );
    }
    checkConnection(merged, path, ctx, problems);
  });
  checkStateApart(root, ctx, [...dataDirs, ...localDestinations], problems);
  return problems;
}

export const SFTP_ONLY_KEYS = [
  'port',
  'username',
  'private_key',
  'passphrase_env',
  'password_env',
  'agent',
  'known_hosts',
  'host_key',
  'insecure_skip_host_key_check',
  'connections',
  'connect_timeout',
  'operation_timeout',
  'keepalive_interval',
  'retries',
  'read_concurrency',
  'chunk_size',
] as const;

/**
 * An SFTP end written as `url: sftp://user@host:port/folder` or as `host`, `username`,
 * `port` and `path` keys: refuses the two forms mixed, or a part given twice, and
 * returns the keys merged (for `checkConnection`) with the remote folder.
 */
export function mergeSftpUrlKeys(
  raw: RawMap,
  path: (string | number)[],
  problems: ConfigProblem[],
  folderDescription: string,
): { merged: RawMap; remotePath: string | undefined } {
  let remotePath = isText(raw.path) ? raw.path : undefined;
  if (raw.url !== undefined && raw.host !== undefined) {
    problems.push(at([...path, 'url'], 'set either url or host (with username, port and path), not both'));
    return { merged: raw, remotePath };
  }
  if (raw.url === undefined) {
    if (!isText(raw.path)) problems.push(at([...path, 'path'], `${MISSING}: ${folderDescription}`));
    return { merged: raw, remotePath };
  }
  // A url that is not text is the schema's to report.
  const url = isText(raw.url) ? parseSftpUrl(raw.url) : undefined;
  if (typeof url !== 'object') {
    if (url !== undefined) problems.push(at([...path, 'url'], url));
    // The URL's own problem is enough: do not also report the host it failed to name.
    return { merged: { ...raw, host: '(from url)', username: raw.username ?? '(from url)' }, remotePath };
  }
  const both = (key: string, part: string): void => {
    problems.push(at([...path, key], `the url already gives the ${part}: keep one of them`));
  };
  if (url.username !== undefined && raw.username !== undefined) both('username', 'user');
  if (url.port !== undefined && raw.port !== undefined) both('port', 'port');
  if (url.path !== '/' && raw.path !== undefined) both('path', 'remote folder');
  if (raw.path === undefined && url.path === '/') {
    problems.push(
      at([...path, 'url'], 'the URL names no remote folder: add it, as in sftp://user@host/inbound'),
    );
  }
  remotePath ??= url.path;
  return {
    merged: { ...raw, host: url.host, username: raw.username ?? url.username, port: url.port ?? raw.port },
    remotePath,
  };
}

/** Auth, host key and referenced files of one SFTP endpoint. */
export function checkConnection(
  raw: RawMap,
  path: (string | number)[],
  ctx: LoadContext,
  problems: ConfigProblem[],
): void {
  if (!isText(raw.host)) problems.push(at([...path, 'host'], `${MISSING}: the SFTP server to connect to`));
  if (!isText(raw.username)) problems.push(at([...path, 'username'], `${MISSING}: the user to log in as`));

  const auths = ['private_key', 'password_env', 'agent'].filter(
    (key) => raw[key] !== undefined && raw[key] !== false,
  );
  if (auths.length !== 1) {
    const found = auths.length === 0 ? 'none' : auths.join(' and ');
    problems.push(at(path, `set exactly one of private_key, password_env or agent: true (found ${found})`));
  }
  if (isText(raw.private_key)) {
    const keyPath = resolveLocalPath(raw.private_key, ctx);
    if (!isReadable(keyPath)) {
      problems.push(
        at([...path, 'private_key'], `cannot read ${keyPath}: check the path and that this user may read it`),
      );
    }
  }
  if (raw.passphrase_env !== undefined && raw.private_key === undefined) {
    problems.push(
      at(
        [...path, 'passphrase_env'],
        'passphrase_env is for an encrypted private_key; set private_key or remove it',
      ),
    );
  }
  for (const key of ['passphrase_env', 'password_env']) {
    const name = raw[key];
    if (isText(name) && (ctx.env[name] === undefined || ctx.env[name] === '')) {
      problems.push(at([...path, key], `environment variable ${name} is not set: export it before starting`));
    }
  }
  if (raw.agent === true && !ctx.env.SSH_AUTH_SOCK) {
    problems.push(
      at([...path, 'agent'], 'agent: true but SSH_AUTH_SOCK is not set: start ssh-agent, or use private_key'),
    );
  }

  const insecure = raw.insecure_skip_host_key_check === true;
  const hostKeyChecks = ['known_hosts', 'host_key'].filter((key) => raw[key] !== undefined);
  if (insecure && hostKeyChecks.length > 0) {
    problems.push(
      at(
        [...path, 'insecure_skip_host_key_check'],
        `conflicts with ${hostKeyChecks.join(' and ')}: remove one`,
      ),
    );
  } else if (!insecure && hostKeyChecks.length !== 1) {
    const found = hostKeyChecks.length === 0 ? 'none' : hostKeyChecks.join(' and ');
    problems.push(
      at(
        path,
        `set exactly one of known_hosts or host_key, or insecure_skip_host_key_check: true (found ${found})`,
      ),
    );
  }
  if (isText(raw.known_hosts)) {
    const knownHostsPath = resolveLocalPath(raw.known_hosts, ctx);
    if (!isReadable(knownHostsPath)) {
      problems.push(
        at(
          [...path, 'known_hosts'],
          `cannot read ${knownHostsPath}: check the path, or pin host_key instead`,
        ),
      );
    }
  }
  const fingerprints = Array.isArray(raw.host_key) ? raw.host_key : [raw.host_key];
  fingerprints.forEach((fingerprint, i) => {
    if (typeof fingerprint === 'string' && !/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(fingerprint.trim())) {
      const keyPath = Array.isArray(raw.host_key) ? [...path, 'host_key', i] : [...path, 'host_key'];
      problems.push(
        at(
          keyPath,
          `expected a fingerprint such as "SHA256:" and 43 base64 characters (ssh-keygen -lf key.pub), got ${JSON.stringify(fingerprint)}`,
        ),
      );
    }
  });
}

export function checkLoop(root: RawMap, problems: ConfigProblem[]): void {
  if (root.schedule !== undefined && root.interval !== undefined) {
    problems.push(at(['schedule'], 'set interval or schedule, not both'));
  }
  if (isText(root.time_zone) && !isTimeZone(root.time_zone)) {
    problems.push(
      at(
        ['time_zone'],
        `unknown time zone ${JSON.stringify(root.time_zone)}: use an IANA name such as Europe/Paris or UTC`,
      ),
    );
  }
  if (isText(root.schedule)) {
    try {
      new Cron(root.schedule, { paused: true });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      problems.push(
        at(['schedule'], `not a cron expression (${reason}): e.g. "*/5 * * * *" for every five minutes`),
      );
    }
  }
}

/**
 * `state_dir`, `log_dir` and `log_file` (where a config has it) must not sit inside a
 * folder of data: the ledger or a log would be fetched, copied or mirrored with it.
 */
export function checkStateApart(
  root: RawMap,
  ctx: LoadContext,
  dataDirs: [string, string][],
  problems: ConfigProblem[],
  dataNoun = 'the files',
): void {
  for (const [key, fallback] of [
    ['state_dir', 'var/state'],
    ['log_dir', 'log'],
    ['log_file', undefined],
  ] as const) {
    const dir =
      localPathAt(root, key, ctx) ?? (fallback === undefined ? undefined : resolveLocalPath(fallback, ctx));
    if (dir === undefined) continue;
    for (const [label, dataDir] of dataDirs) {
      if (isInside(dir, dataDir)) {
        problems.push(
          at(
            [key],
            `${dir} is inside ${label} (${dataDir}): state and logs must live apart from ${dataNoun}`,
          ),
        );
      }
    }
  }
}

function checkApart(aLabel: string, a: string, bLabel: string, b: string, problems: ConfigProblem[]): void {
  if (a === b)
    problems.push(at([aLabel], `is the same folder as ${bLabel} (${b}): use two separate folders`));
  else if (isInside(a, b))
    problems.push(at([aLabel], `${a} is inside ${bLabel} (${b}): use two separate folders`));
  else if (isInside(b, a))
    problems.push(at([aLabel], `${a} contains ${bLabel} (${b}): use two separate folders`));
}

const LAYOUT_PLACEHOLDERS = new Set(['source', 'path', 'dir', 'name', 'date']);

function checkLayout(layout: unknown, path: (string | number)[], problems: ConfigProblem[]): void {
  if (!isText(layout)) return;
  for (const match of layout.matchAll(/\{([^}]*)\}/g)) {
    if (!LAYOUT_PLACEHOLDERS.has(match[1] ?? '')) {
      problems.push(
        at(path, `unknown placeholder {${match[1]}}: use {source}, {path}, {dir}, {name} or {date}`),
      );
    }
  }
  if (!layout.includes('{path}') && !layout.includes('{name}')) {
    problems.push(at(path, 'a layout needs {path} or {name}, or every file would land on one name'));
  }
  if (layout.startsWith('/') || layout.split('/').includes('..')) {
    problems.push(at(path, 'a layout is relative to its folder: no leading "/" and no ".."'));
  }
}

export function checkUniqueNames(items: unknown[], listKey: string, problems: ConfigProblem[]): void {
  const firstIndexByName = new Map<string, number>();
  items.forEach((item, index) => {
    const name = asMap(item)?.name;
    if (!isText(name)) return;
    const first = firstIndexByName.get(name);
    if (first === undefined) firstIndexByName.set(name, index);
    else
      problems.push(
        at(
          [listKey, index, 'name'],
          `"${name}" is already the name of ${listKey}[${first}]: names must be unique`,
        ),
      );
  });
}

export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function localPathAt(map: RawMap, key: string, ctx: LoadContext): string | undefined {
  const value = map[key];
  return isText(value) ? resolveLocalPath(value.trim(), ctx) : undefined;
}

function sizeOf(value: unknown): number | undefined {
  return typeof value === 'string' || typeof value === 'number' ? parseSize(value) : undefined;
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

function isReadable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

export function asMap(value: unknown): RawMap | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as RawMap) : undefined;
}

export function isText(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

export function at(path: (string | number)[], message: string): ConfigProblem {
  return { keyPath: formatKeyPath(path), message };
}
