import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { HostKeyCheck } from '../../config/config-types.js';
import { SyncError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { findKnownHostKeys, type KnownHostMatch } from './known-hosts.js';

/** What `connectSsh` hands to ssh2 and asks afterwards. */
export interface HostKeyVerifier {
  /** ssh2's `hostVerifier`: true accepts the key the server presented. */
  verify(keyBlob: Buffer): boolean;
  /** Why the key was refused, once `verify` returned false. */
  readonly rejection: SyncError | undefined;
  /**
   * Host key algorithms in the order to offer them, those the known_hosts file holds
   * first, so a server with several host keys presents one we can check (as ssh
   * does); undefined leaves ssh2's default order.
   */
  readonly preferredAlgorithms: string[] | undefined;
}

export interface HostKeyVerifierOptions {
  check: HostKeyCheck;
  host: string;
  port: number;
  /** `user@host:port`, for messages. */
  hostLabel: string;
  log: Logger;
}

/** ssh2's default order (ssh-ed25519 is supported on every Node this project runs on). */
const DEFAULT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Signature algorithms that prove possession of a key of a given known_hosts key type. */
const ALGORITHMS_FOR_KEY_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** `SHA256:` + unpadded base64 of the key blob's sha256, as `ssh-keygen -l` prints it. */
export function sha256Fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named at the start of an SSH public key blob (`ssh-ed25519`, …). */
export function keyTypeOfBlob(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const length = keyBlob.readUInt32BE(0);
  if (length > keyBlob.length - 4 || length > 64) return 'unknown';
  return keyBlob.subarray(4, 4 + length).toString('latin1');
}

/**
 * Builds the host key check for one connection attempt. The known_hosts file is
 * read now, at connect time, so an operator's fix takes effect on the next attempt;
 * a missing file is reported when the server's key arrives, with that key's
 * fingerprint, like an unknown host.
 */
export async function createHostKeyVerifier(options: HostKeyVerifierOptions): Promise<HostKeyVerifier> {
  const { check } = options;
  if (check.kind === 'insecure') return insecureVerifier(options);
  if (check.kind === 'fingerprint') return fingerprintVerifier(options, check.fingerprints);
  let known: KnownHostMatch | undefined;
  let readProblem: string | undefined;
  try {
    const text = await readFile(check.knownHostsPath, 'utf8');
    known = findKnownHostKeys(text, options.host, options.port);
  } catch (err) {
    const errno = (err as { code?: unknown }).code;
    readProblem = errno === 'ENOENT' ? 'does not exist' : `cannot be read (${String(errno ?? err)})`;
  }
  return knownHostsVerifier(options, check.knownHostsPath, known, readProblem);
}

function insecureVerifier(options: HostKeyVerifierOptions): HostKeyVerifier {
  return {
    verify(keyBlob) {
      // Every connect says so: an opt-out that is logged once is soon forgotten.
      options.log.warn(
        {
          op: 'connect',
          host: options.hostLabel,
          fingerprint: sha256Fingerprint(keyBlob),
          keyType: keyTypeOfBlob(keyBlob),
        },
        `host key of ${options.hostLabel} NOT verified (insecure_skip_host_key_check): ` +
          `accepting ${sha256Fingerprint(keyBlob)}; pin it with host_key to stop this warning`,
      );
      return true;
    },
    rejection: undefined,
    preferredAlgorithms: undefined,
  };
}

function fingerprintVerifier(options: HostKeyVerifierOptions, pinned: readonly string[]): HostKeyVerifier {
  const expected = pinned.map(normaliseFingerprint);
  let rejection: SyncError | undefined;
  return {
    verify(keyBlob) {
      const seen = sha256Fingerprint(keyBlob);
      if (expected.includes(seen)) return true;
      rejection = new SyncError(
        'E_HOSTKEY',
        `host key mismatch for ${options.hostLabel}: the server presented ${seen} (${keyTypeOfBlob(keyBlob)}), ` +
          `host_key pins ${expected.join(', ')}`,
        {
          op: 'connect',
          host: options.hostLabel,
          hint: 'if the server key really changed, confirm the new fingerprint with its owner and update host_key; otherwise the connection may be intercepted',
          fingerprintSeen: seen,
          fingerprintsExpected: expected,
          retryable: false,
        },
      );
      return false;
    },
    get rejection() {
      return rejection;
    },
    preferredAlgorithms: undefined,
  };
}

function knownHostsVerifier(
  options: HostKeyVerifierOptions,
  knownHostsPath: string,
  known: KnownHostMatch | undefined,
  readProblem: string | undefined,
): HostKeyVerifier {
  let rejection: SyncError | undefined;
  const refuse = (message: string, hint: string, extra: Record<string, unknown>): false => {
    rejection = new SyncError('E_HOSTKEY', message, {
      op: 'connect',
      host: options.hostLabel,
      hint,
      knownHostsPath,
      retryable: false,
      ...extra,
    });
    return false;
  };
  return {
    verify(keyBlob) {
      const seen = sha256Fingerprint(keyBlob);
      const keyType = keyTypeOfBlob(keyBlob);
      const addHint =
        `after confirming ${seen} with the server owner: ssh-keyscan -p ${options.port} ${options.host} >> ${knownHostsPath}, ` +
        `or pin host_key: "${seen}"`;
      if (!known) {
        return refuse(
          `cannot check the host key of ${options.hostLabel}: known_hosts file ${knownHostsPath} ${readProblem ?? 'is unusable'} ` +
            `(the server presented ${seen} ${keyType})`,
          `create it ${addHint}`,
          { fingerprintSeen: seen },
        );
      }
      const revoked = known.revoked.find((entry) => sameKey(entry.keyBase64, keyBlob));
      if (revoked) {
        return refuse(
          `host key ${seen} (${keyType}) of ${options.hostLabel} is marked @revoked in ${knownHostsPath} line ${revoked.lineNumber}`,
          'the server key was revoked: do not connect until its owner provides a new one',
          { fingerprintSeen: seen },
        );
      }
      if (known.keys.some((entry) => sameKey(entry.keyBase64, keyBlob))) return true;
      if (known.keys.length === 0) {
        return refuse(
          `unknown host ${options.hostLabel}: no entry in ${knownHostsPath} (the server presented ${seen} ${keyType})`,
          `add it ${addHint}`,
          { fingerprintSeen: seen },
        );
      }
      const expected = known.keys.map(
        (entry) => `${fingerprintOfBase64(entry.keyBase64)} (${entry.keyType}, line ${entry.lineNumber})`,
      );
      return refuse(
        `host key mismatch for ${options.hostLabel}: the server presented ${seen} (${keyType}), ` +
          `${knownHostsPath} expects ${expected.join(', ')}`,
        `if the server key really changed, confirm ${seen} with its owner, then replace the entry ` +
          `(ssh-keygen -R '${options.port === 22 ? options.host : `[${options.host}]:${options.port}`}' -f ${knownHostsPath}); ` +
          'otherwise the connection may be intercepted',
        {
          fingerprintSeen: seen,
          fingerprintsExpected: known.keys.map((entry) => fingerprintOfBase64(entry.keyBase64)),
        },
      );
    },
    get rejection() {
      return rejection;
    },
    preferredAlgorithms: known && known.keys.length > 0 ? preferKeyTypes(known) : undefined,
  };
}

function preferKeyTypes(known: KnownHostMatch): string[] {
  const first: string[] = [];
  for (const entry of known.keys) {
    for (const algorithm of ALGORITHMS_FOR_KEY_TYPE[entry.keyType] ?? []) {
      if (!first.includes(algorithm)) first.push(algorithm);
    }
  }
  return [...first, ...DEFAULT_HOST_KEY_ALGORITHMS.filter((algorithm) => !first.includes(algorithm))];
}

function sameKey(keyBase64: string, keyBlob: Buffer): boolean {
  return Buffer.from(keyBase64, 'base64').equals(keyBlob);
}

function fingerprintOfBase64(keyBase64: string): string {
  return sha256Fingerprint(Buffer.from(keyBase64, 'base64'));
}

function normaliseFingerprint(fingerprint: string): string {
  const trimmed = fingerprint.trim().replace(/=+$/, '');
  return /^sha256:/i.test(trimmed) ? `SHA256:${trimmed.slice(7)}` : `SHA256:${trimmed}`;
}
