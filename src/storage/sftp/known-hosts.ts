import { createHmac } from 'node:crypto';

/** One key line of an OpenSSH `known_hosts` file that names the host being looked up. */
export interface KnownHostKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, … as written in the file. */
  keyType: string;
  /** The key blob, base64 as written in the file. */
  keyBase64: string;
  lineNumber: number;
}

export interface KnownHostMatch {
  /** Keys the host may present. */
  keys: KnownHostKey[];
  /** Keys marked `@revoked` for this host: never accepted, even when also listed as valid. */
  revoked: KnownHostKey[];
}

/**
 * The name OpenSSH looks a host up by: the bare host for port 22, `[host]:port`
 * otherwise (that is also what hashed entries hash).
 */
export function knownHostsName(host: string, port: number): string {
  const lower = host.toLowerCase();
  return port === 22 ? lower : `[${lower}]:${port}`;
}

/**
 * The entries of an OpenSSH `known_hosts` text that apply to `host:port`: plain and
 * hashed (`|1|salt|hash`) host fields, comma-separated pattern lists with `*`, `?`
 * and `!` negation, `@revoked` lines kept apart, `@cert-authority` lines ignored
 * (host certificates are not supported, so a CA line proves nothing here).
 * Malformed lines are skipped, as ssh does.
 */
export function findKnownHostKeys(text: string, host: string, port: number): KnownHostMatch {
  const name = knownHostsName(host, port);
  const match: KnownHostMatch = { keys: [], revoked: [] };
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index += 1) {
    const line = (lines[index] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    const [hosts, keyType, keyBase64] = fields;
    if (!hosts || !keyType || !keyBase64) continue;
    if (marker !== undefined && marker !== '@revoked') continue;
    if (!hostFieldMatches(hosts, name)) continue;
    const key: KnownHostKey = { keyType, keyBase64, lineNumber: index + 1 };
    if (marker === '@revoked') match.revoked.push(key);
    else match.keys.push(key);
  }
  return match;
}

function hostFieldMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith('|1|')) return hashedHostMatches(hosts, name);
  let matched = false;
  for (const pattern of hosts.split(',')) {
    if (pattern === '') continue;
    const negated = pattern.startsWith('!');
    const body = (negated ? pattern.slice(1) : pattern).toLowerCase();
    if (!wildcardMatches(body, name)) continue;
    // A matching negated pattern rules the line out whatever else matches.
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/** `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as `ssh-keygen -H` writes. */
function hashedHostMatches(field: string, name: string): boolean {
  const parts = field.split('|');
  const salt = parts[2];
  const hash = parts[3];
  if (parts.length !== 4 || !salt || !hash) return false;
  const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return digest === hash;
}

function wildcardMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === name;
  const source = pattern
    .split('')
    .map((char) => {
      if (char === '*') return '.*';
      if (char === '?') return '.';
      return char.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`).test(name);
}
