import { readFile } from 'node:fs/promises';
import ssh2, { type Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import type { SftpAuth, SftpConnectionConfig } from '../../config/config-types.js';
import { SyncError, toSyncError, withDeadline } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { createHostKeyVerifier, type HostKeyVerifier } from './host-key-verifier.js';

export interface ConnectSshOptions {
  connection: SftpConnectionConfig;
  /** `user@host:port`, for messages. */
  hostLabel: string;
  log: Logger;
  /** Log ssh2's protocol lines (key exchange, auth methods, channel requests) at trace level: `-vvv`. */
  traceProtocol?: boolean;
}

/** An authenticated SSH connection with its SFTP channel open. */
export interface SshConnection {
  client: Client;
  sftp: SFTPWrapper;
}

/** Keepalive probes missed before ssh2 declares the connection dead. */
const KEEPALIVE_COUNT_MAX = 3;

/** How long past ssh2's own `readyTimeout` our backstop deadline waits. */
const READY_BACKSTOP_MS = 1_000;

/**
 * One connection attempt: credentials, host key check, TCP without Nagle (on
 * loopback and fast links Nagle's batching, not the CPU, limits SFTP throughput),
 * keepalive, a deadline on the handshake and on opening the SFTP channel. Retrying
 * is the pool's job. Secrets go to ssh2 and nowhere else.
 */
export async function connectSsh(options: ConnectSshOptions): Promise<SshConnection> {
  const { connection, hostLabel } = options;
  const context = { op: 'connect', host: hostLabel };
  const authConfig = await buildAuthConfig(connection.auth, context);
  const verifier = await createHostKeyVerifier({
    check: connection.hostKey,
    host: connection.host,
    port: connection.port,
    hostLabel,
    log: options.log,
  });

  const client = new ssh2.Client();
  const config: ConnectConfig = {
    host: connection.host,
    port: connection.port,
    username: connection.username,
    readyTimeout: connection.connectTimeoutMs,
    keepaliveInterval: connection.keepaliveIntervalMs,
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
    hostVerifier: (keyBlob: Buffer) => verifier.verify(keyBlob),
    ...authConfig,
  };
  if (options.traceProtocol === true) {
    // ssh2 never puts a password or key in these lines; the logger masks known secrets all the same.
    config.debug = (line: string) => options.log.trace({ op: 'ssh', host: hostLabel }, line);
  }
  if (verifier.preferredAlgorithms) {
    config.algorithms = { serverHostKey: verifier.preferredAlgorithms as never[] };
  }

  const ready = new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      cleanup();
      reject(mapConnectError(err, verifier, connection, hostLabel));
    };
    const onClose = (): void => {
      cleanup();
      reject(
        verifier.rejection ??
          new SyncError('E_CONNECTION', `connect failed: the server closed the connection (${hostLabel})`, {
            ...context,
            hint: 'check the server accepts SSH connections from this host; it is retried',
          }),
      );
    };
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      client.removeListener('ready', onReady);
    };
    client.on('error', onError).on('close', onClose).on('ready', onReady);
  });
  // The socket exists only once connect() ran; Nagle off before the first byte goes out.
  client.once('connect', () => setNoDelay(client));
  if (connection.auth.kind === 'password') {
    const password = connection.auth.password;
    client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => {
      // A server that asks for the password through keyboard-interactive gets it for its one hidden prompt.
      finish(prompts.length === 1 && prompts[0]?.echo === false ? [password.reveal()] : []);
    });
  }
  // An 'error' after the attempt settled (a late socket error) must not crash the process.
  client.on('error', () => undefined);

  try {
    client.connect(config);
    await withDeadline(ready, connection.connectTimeoutMs + READY_BACKSTOP_MS, context, () =>
      client.destroy(),
    );
    const sftp = await withDeadline(openSftp(client, hostLabel), connection.operationTimeoutMs, context, () =>
      client.destroy(),
    );
    options.log.debug({ op: 'connect', host: hostLabel }, `connected to ${hostLabel}`);
    return { client, sftp };
  } catch (err) {
    client.destroy();
    if (err instanceof SyncError) throw err;
    throw mapConnectError(err, verifier, connection, hostLabel);
  }
}

function setNoDelay(client: Client): void {
  // @types/ssh2 lacks Client#setNoDelay, which ssh2 1.x has.
  (client as unknown as { setNoDelay(noDelay: boolean): void }).setNoDelay(true);
}

function openSftp(client: Client, hostLabel: string): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => {
    try {
      client.sftp((err, sftp) => {
        if (err) {
          reject(
            new SyncError(
              'E_CONNECTION',
              `connect failed: the server refused the SFTP subsystem (${hostLabel})`,
              {
                op: 'connect',
                host: hostLabel,
                hint: 'check the server enables SFTP for this user (Subsystem sftp)',
                retryable: false,
                cause: err,
              },
            ),
          );
        } else resolve(sftp);
      });
    } catch (err) {
      reject(toSyncError(err, { op: 'connect', host: hostLabel }));
    }
  });
}

async function buildAuthConfig(
  auth: SftpAuth,
  context: { op: string; host: string },
): Promise<Partial<ConnectConfig>> {
  if (auth.kind === 'password') return { password: auth.password.reveal(), tryKeyboard: true };
  if (auth.kind === 'agent') {
    if (!auth.agentSocketPath) {
      throw new SyncError('E_AUTH', `connect failed: no ssh-agent socket to use (${context.host})`, {
        ...context,
        hint: 'start ssh-agent and export SSH_AUTH_SOCK, or configure private_key',
        retryable: false,
      });
    }
    return { agent: auth.agentSocketPath };
  }
  let keyData: Buffer;
  try {
    keyData = await readFile(auth.privateKeyPath);
  } catch (err) {
    const mapped = toSyncError(err, { ...context, path: auth.privateKeyPath });
    throw new SyncError('E_AUTH', `cannot read private key ${auth.privateKeyPath}: ${mapped.message}`, {
      ...context,
      path: auth.privateKeyPath,
      hint: 'check private_key names a readable key file',
      retryable: false,
      cause: err,
    });
  }
  const passphrase = auth.passphrase?.reveal();
  // Parsed here, not inside ssh2.connect, so a bad passphrase is E_AUTH with a hint
  // rather than a thrown string; ssh2's messages never quote the key.
  const parsed = ssh2.utils.parseKey(keyData, passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase|bad decrypt/i.test(parsed.message);
    throw new SyncError(
      'E_AUTH',
      `cannot use private key ${auth.privateKeyPath}: ${encrypted ? (passphrase === undefined ? 'it is encrypted and no passphrase was given' : 'wrong passphrase') : parsed.message}`,
      {
        ...context,
        path: auth.privateKeyPath,
        hint: encrypted
          ? 'set passphrase_env to the variable holding the key passphrase, and check its value'
          : 'check private_key names an OpenSSH or PEM private key',
        retryable: false,
      },
    );
  }
  return { privateKey: keyData, ...(passphrase !== undefined ? { passphrase } : {}) };
}

interface Ssh2Error {
  message?: unknown;
  level?: unknown;
  code?: unknown;
}

/** Connection-phase errors from ssh2 (by its `level`) to our codes; never retried when retrying cannot help. */
export function mapConnectError(
  err: unknown,
  verifier: HostKeyVerifier,
  connection: SftpConnectionConfig,
  hostLabel: string,
): SyncError {
  if (verifier.rejection) return verifier.rejection;
  if (err instanceof SyncError) return err;
  const context = { op: 'connect', host: hostLabel };
  const { message: rawMessage, level, code } = (err ?? {}) as Ssh2Error;
  const message = typeof rawMessage === 'string' ? rawMessage : String(err);
  if (level === 'client-authentication') {
    return new SyncError(
      'E_AUTH',
      `authentication failed for ${hostLabel} (${describeAuth(connection.auth)})`,
      {
        ...context,
        hint: authHint(connection),
        retryable: false,
        cause: err,
      },
    );
  }
  if (level === 'agent') {
    return new SyncError('E_AUTH', `ssh-agent failed while authenticating to ${hostLabel}: ${message}`, {
      ...context,
      hint: 'check the agent runs (ssh-add -l) and SSH_AUTH_SOCK points at it',
      retryable: false,
      cause: err,
    });
  }
  if (level === 'client-timeout') {
    return new SyncError(
      'E_TIMEOUT',
      `connect failed: no SSH handshake within ${connection.connectTimeoutMs} ms (${hostLabel})`,
      {
        ...context,
        hint: 'the server or the network is slow or filtering; check it, or raise connect_timeout',
        cause: err,
      },
    );
  }
  if (level === 'client-socket' && typeof code === 'string') return toSyncError(err, context);
  if (level === 'handshake') {
    const noMatch = /no matching/i.test(message);
    return new SyncError('E_CONNECTION', `SSH handshake with ${hostLabel} failed: ${message}`, {
      ...context,
      hint: noMatch
        ? 'the server and this client share no algorithm; check the server configuration'
        : 'the connection dropped during the handshake; it is retried',
      retryable: !noMatch,
      cause: err,
    });
  }
  return new SyncError('E_CONNECTION', `connect failed: ${message} (${hostLabel})`, {
    ...context,
    hint: 'the server or the network dropped the connection; it is retried',
    cause: err,
  });
}

function describeAuth(auth: SftpAuth): string {
  if (auth.kind === 'key') return `key ${auth.privateKeyPath}`;
  if (auth.kind === 'password') return 'password';
  return `ssh-agent ${auth.agentSocketPath}`;
}

function authHint(connection: SftpConnectionConfig): string {
  const { auth, username } = connection;
  if (auth.kind === 'key')
    return `check the public half of ${auth.privateKeyPath} is in ${username}'s authorized_keys on the server`;
  if (auth.kind === 'password')
    return `check the password for ${username} and that the server allows password logins`;
  return `check the agent holds a key authorised for ${username} on the server (ssh-add -l)`;
}
