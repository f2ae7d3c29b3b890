/**
 * A small, honest SFTP v3 server (ssh2's server API) confined to one folder. The demo
 * serves its sample tree with it, and unit tests of the fetcher use it to inject the
 * faults a real sshd cannot: short reads, stalls, failing reads, dropped connections.
 *
 * Confinement: client paths are POSIX paths under a virtual root `/` that maps to
 * `rootDir`; `..` never climbs above it. A symbolic link whose target resolves outside
 * the root (or a dangling link, whose target cannot be checked) is never followed:
 * the request answers PERMISSION_DENIED. LSTAT and READDIR still show the link itself.
 * The checks run before each file-system call, so a client racing its own renames could
 * slip past them; acceptable for demo and test infrastructure, not for production.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Dir, constants as fsConstants, type Stats } from 'node:fs';
import {
  chmod,
  chown,
  type FileHandle,
  lstat,
  mkdir,
  open,
  opendir,
  readlink,
  realpath,
  rename,
  rmdir,
  stat,
  truncate,
  unlink,
  utimes,
} from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import ssh2 from 'ssh2';
import type { Attributes, AuthContext, Connection, FileEntry, ParsedKey, SFTPWrapper } from 'ssh2';
import { SyncError, sleep } from '../errors/index.js';
import { generateEd25519KeyPair } from './generate-key-pair.js';

const STATUS = ssh2.utils.sftp.STATUS_CODE;
const OPEN_MODE = ssh2.utils.sftp.OPEN_MODE;
/** OpenSSH's sftp-server sends at most 100 names per READDIR reply; clients expect batches. */
const READDIR_BATCH_ENTRIES = 100;
/** Clients may ask for more; a larger reply could exceed the peer's packet limit (OpenSSH: 256 KiB). */
const MAX_READ_BYTES = 255 * 1024;
const STOP_TIMEOUT_MS = 5_000;

/** Faults for tests; all off by default. Counters restart per connection and on every `setFaults`. */
export interface EmbeddedSftpFaults {
  /** Answer each READ with at most this many bytes, even when more were asked and are there (ssh2 #1166). */
  shortReads?: number;
  /** After this many READ requests on a connection, answer no request on it at all; TCP stays open. */
  stallAfterReads?: number;
  /** The Nth READ request on a connection (1-based) answers FAILURE. */
  failReadNumber?: number;
  /** Destroy the TCP connection right after the READ reply that brings its file data to this many bytes. */
  dropAfterBytes?: number;
  /** OPEN of these virtual paths (or those the predicate accepts) answers PERMISSION_DENIED. */
  failPaths?: readonly string[] | ((virtualPath: string) => boolean);
  /** Delay each READ reply by this long. */
  readDelayMs?: number;
}

export type EmbeddedSftpFaultName = 'stallAfterReads' | 'failReadNumber' | 'dropAfterBytes' | 'failPaths';

export interface EmbeddedSftpFaultEvent {
  fault: EmbeddedSftpFaultName;
  connectionId: number;
  virtualPath?: string;
}

/** What happened since start, across connections, for assertions. */
export interface EmbeddedSftpServerCounters {
  connectionsAccepted: number;
  readRequests: number;
  /** READ requests answered with data. */
  readsServed: number;
  /** File data sent in READ replies. */
  bytesSent: number;
  /** READ replies cut short by the `shortReads` fault. */
  shortReads: number;
  readsFailed: number;
  stalledConnections: number;
  droppedConnections: number;
  opensDenied: number;
  readdirBatches: number;
}

export interface EmbeddedSftpServerOptions {
  /** The folder served as `/`. */
  rootDir: string;
  username: string;
  /** The client's public key: an OpenSSH line (`ssh-ed25519 AAAA…`) or a parsed key. */
  authorizedKey?: string | ParsedKey | undefined;
  password?: string;
  /** Host private key (PEM or OpenSSH); a fresh ed25519 key when absent. */
  hostKey?: string | Buffer;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  faults?: EmbeddedSftpFaults;
  /** Told of each fault as it fires, e.g. to clear faults so a retry runs clean. */
  onFault?: (event: EmbeddedSftpFaultEvent) => void;
  /** Debug lines: connections, authentication, faults, failed requests. */
  log?: (message: string) => void;
}

export interface EmbeddedSftpServer {
  readonly host: string;
  readonly port: number;
  /** The served folder, symbolic links resolved. */
  readonly rootDir: string;
  /** `SHA256:…` as OpenSSH prints it. */
  readonly hostKeyFingerprint: string;
  /** `ssh-ed25519 AAAA…`, for a known_hosts line. */
  readonly hostPublicKey: string;
  /** TCP connections open now, logged in or not. */
  clientConnections(): number;
  setFaults(faults: EmbeddedSftpFaults): void;
  counters(): EmbeddedSftpServerCounters;
  /** Closes the listener and destroys every client connection. */
  stop(): Promise<void>;
}

interface ConnectionState {
  readonly id: number;
  readonly socket: Socket;
  /** Aborted when the connection closes, so delayed replies give up. */
  readonly closed: AbortController;
  faultEpoch: number;
  faultReads: number;
  faultBytesSent: number;
  stalled: boolean;
  /** Per SFTP session: closes its handles. */
  readonly cleanups: Set<() => Promise<void>>;
}

type OpenHandle =
  | { kind: 'file'; file: FileHandle; virtualPath: string }
  | { kind: 'dir'; dir: Dir; virtualPath: string; realPath: string; dotsSent: boolean };

/** An SFTP status reply carried as an exception from deep inside a request handler. */
class SftpStatus extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startEmbeddedSftpServer(
  options: EmbeddedSftpServerOptions,
): Promise<EmbeddedSftpServer> {
  if (options.authorizedKey === undefined && options.password === undefined) {
    throw new SyncError('E_CONFIG', 'embedded SFTP server needs an authorized key or a password', {
      op: 'start-sftp-server',
      hint: 'pass authorizedKey and/or password',
    });
  }
  const clientKey = options.authorizedKey === undefined ? undefined : parseKeyOrThrow(options.authorizedKey);
  const hostKeyText = options.hostKey ?? generateEd25519KeyPair().private;
  const hostKey = parseKeyOrThrow(hostKeyText);
  const hostKeyBlob = hostKey.getPublicSSH();
  const rootReal = await realRootOrThrow(options.rootDir);
  const jail = new PathJail(rootReal);
  const log = options.log ?? (() => {});

  let faults: EmbeddedSftpFaults = { ...options.faults };
  let faultEpoch = 0;
  const counters: EmbeddedSftpServerCounters = {
    connectionsAccepted: 0,
    readRequests: 0,
    readsServed: 0,
    bytesSent: 0,
    shortReads: 0,
    readsFailed: 0,
    stalledConnections: 0,
    droppedConnections: 0,
    opensDenied: 0,
    readdirBatches: 0,
  };
  const sockets = new Map<string, Socket>();
  /** Handle closes still running after a disconnect; `stop` waits for them so no descriptor outlives it. */
  const pendingCleanups = new Set<Promise<unknown>>();
  let nextConnectionId = 1;

  const fire = (conn: ConnectionState, fault: EmbeddedSftpFaultName, virtualPath?: string): void => {
    log(`connection ${conn.id}: fault ${fault}${virtualPath ? ` on ${virtualPath}` : ''}`);
    try {
      options.onFault?.({ fault, connectionId: conn.id, ...(virtualPath ? { virtualPath } : {}) });
    } catch (err) {
      log(`onFault threw: ${String(err)}`);
    }
  };

  const sshServer = new ssh2.Server({ hostKeys: [hostKeyText] });
  sshServer.on('connection', (client: Connection, info: { ip: string; port: number }) => {
    const socket = sockets.get(socketKey(info.ip, info.port));
    if (!socket) {
      client.end();
      return;
    }
    counters.connectionsAccepted += 1;
    const conn: ConnectionState = {
      id: nextConnectionId++,
      socket,
      closed: new AbortController(),
      faultEpoch,
      faultReads: 0,
      faultBytesSent: 0,
      stalled: false,
      cleanups: new Set(),
    };
    log(`connection ${conn.id}: from ${info.ip}:${info.port}`);
    socket.once('close', () => {
      conn.closed.abort();
      const cleaned = Promise.allSettled([...conn.cleanups].map((cleanup) => cleanup()));
      pendingCleanups.add(cleaned);
      void cleaned.finally(() => pendingCleanups.delete(cleaned));
      log(`connection ${conn.id}: closed`);
    });
    client.on('error', (err: Error) => log(`connection ${conn.id}: ${err.message}`));
    client.on('authentication', (ctx: AuthContext) => {
      const accepted = authenticate(ctx, options.username, clientKey, options.password);
      log(
        `connection ${conn.id}: auth ${ctx.method} for ${ctx.username}: ${accepted ? 'accepted' : 'refused'}`,
      );
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('sftp', (acceptSftp) => serveSftp(acceptSftp(), conn));
      });
    });
  });

  /** Fault counters restart when the faults change, so `setFaults({ failReadNumber: 1 })` fails the next READ. */
  const syncFaultEpoch = (conn: ConnectionState): void => {
    if (conn.faultEpoch === faultEpoch) return;
    conn.faultEpoch = faultEpoch;
    conn.faultReads = 0;
    conn.faultBytesSent = 0;
  };

  function serveSftp(sftp: SFTPWrapper, conn: ConnectionState): void {
    const handles = new Map<string, OpenHandle>();
    let nextHandle = 1;
    const closeAll = async (): Promise<void> => {
      conn.cleanups.delete(closeAll);
      const open = [...handles.values()];
      handles.clear();
      await Promise.allSettled(open.map(closeHandle));
    };
    conn.cleanups.add(closeAll);
    sftp.on('close', () => void closeAll());

    const addHandle = (entry: OpenHandle): Buffer => {
      const handle = Buffer.alloc(4);
      handle.writeUInt32BE(nextHandle++);
      handles.set(handle.toString('hex'), entry);
      return handle;
    };
    const getHandle = <K extends OpenHandle['kind']>(
      handle: Buffer,
      kind: K,
    ): Extract<OpenHandle, { kind: K }> => {
      const entry = handles.get(handle.toString('hex'));
      if (!entry || entry.kind !== kind) throw new SftpStatus(STATUS.FAILURE, `invalid ${kind} handle`);
      return entry as Extract<OpenHandle, { kind: K }>;
    };

    /** Runs one request: its result or error becomes the reply, unless the connection stalled or closed. */
    const serve = (reqId: number, op: string, clientPath: string, work: () => Promise<void>): void => {
      if (conn.stalled) return;
      work().catch((err: unknown) => {
        if (conn.closed.signal.aborted) return;
        const { status, message } = toStatus(err, clientPath);
        if (status !== (STATUS.EOF as number)) log(`connection ${conn.id}: ${op} ${clientPath}: ${message}`);
        sftp.status(reqId, status, message);
      });
    };
    const ok = (reqId: number): void => void sftp.status(reqId, STATUS.OK);

    sftp.on('OPEN', (reqId, filename, flags, attrs) => {
      serve(reqId, 'open', filename, async () => {
        const virtualPath = jail.virtual(filename);
        if (matchesFailPaths(faults.failPaths, virtualPath)) {
          counters.opensDenied += 1;
          fire(conn, 'failPaths', virtualPath);
          throw new SftpStatus(STATUS.PERMISSION_DENIED, `permission denied: ${virtualPath}`);
        }
        const realPath = await jail.real(virtualPath, true);
        const mode = typeof attrs.mode === 'number' ? attrs.mode & 0o7777 : 0o644;
        const file = await open(realPath, openFlags(flags), mode);
        if ((await file.stat()).isDirectory()) {
          await file.close();
          throw new SftpStatus(STATUS.FAILURE, `is a folder: ${virtualPath}`);
        }
        sftp.handle(reqId, addHandle({ kind: 'file', file, virtualPath }));
      });
    });

    sftp.on('READ', (reqId, handle, offset, lengthBytes) => {
      if (conn.stalled) return;
      syncFaultEpoch(conn);
      const active = faults;
      counters.readRequests += 1;
      conn.faultReads += 1;
      if (active.stallAfterReads !== undefined && conn.faultReads > active.stallAfterReads) {
        conn.stalled = true;
        counters.stalledConnections += 1;
        fire(conn, 'stallAfterReads');
        return;
      }
      serve(reqId, 'read', '', async () => {
        const entry = getHandle(handle, 'file');
        if (active.failReadNumber !== undefined && conn.faultReads === active.failReadNumber) {
          counters.readsFailed += 1;
          fire(conn, 'failReadNumber', entry.virtualPath);
          throw new SftpStatus(STATUS.FAILURE, `injected read failure: ${entry.virtualPath}`);
        }
        if (active.readDelayMs) await sleep(active.readDelayMs, conn.closed.signal);
        let wantBytes = Math.min(lengthBytes, MAX_READ_BYTES);
        const cut = active.shortReads !== undefined && active.shortReads > 0 && wantBytes > active.shortReads;
        if (cut) wantBytes = active.shortReads ?? wantBytes;
        const buffer = Buffer.allocUnsafe(wantBytes);
        const { bytesRead } = await entry.file.read(buffer, 0, wantBytes, offset);
        if (bytesRead === 0) throw new SftpStatus(STATUS.EOF, 'end of file');
        if (conn.closed.signal.aborted) return;
        sftp.data(reqId, buffer.subarray(0, bytesRead));
        counters.readsServed += 1;
        counters.bytesSent += bytesRead;
        if (cut && bytesRead === wantBytes) counters.shortReads += 1;
        conn.faultBytesSent += bytesRead;
        if (active.dropAfterBytes !== undefined && conn.faultBytesSent >= active.dropAfterBytes) {
          counters.droppedConnections += 1;
          fire(conn, 'dropAfterBytes', entry.virtualPath);
          // A cut, not a goodbye: no SSH disconnect message, as when a network path dies.
          conn.socket.destroy();
        }
      });
    });

    sftp.on('WRITE', (reqId, handle, offset, data) => {
      serve(reqId, 'write', '', async () => {
        const entry = getHandle(handle, 'file');
        await entry.file.write(data, 0, data.length, offset);
        ok(reqId);
      });
    });

    sftp.on('FSTAT', (reqId, handle) => {
      serve(reqId, 'fstat', '', async () => {
        sftp.attrs(reqId, toAttrs(await getHandle(handle, 'file').file.stat()));
      });
    });

    sftp.on('FSETSTAT', (reqId, handle, attrs) => {
      serve(reqId, 'fsetstat', '', async () => {
        const { file } = getHandle(handle, 'file');
        if (typeof attrs.size === 'number') await file.truncate(attrs.size);
        if (typeof attrs.mode === 'number') await file.chmod(attrs.mode & 0o7777);
        if (typeof attrs.uid === 'number' && typeof attrs.gid === 'number')
          await file.chown(attrs.uid, attrs.gid);
        if (typeof attrs.atime === 'number' && typeof attrs.mtime === 'number') {
          await file.utimes(attrs.atime, attrs.mtime);
        }
        ok(reqId);
      });
    });

    sftp.on('SETSTAT', (reqId, path, attrs) => {
      serve(reqId, 'setstat', path, async () => {
        const realPath = await jail.real(jail.virtual(path), true);
        if (typeof attrs.size === 'number') await truncate(realPath, attrs.size);
        if (typeof attrs.mode === 'number') await chmod(realPath, attrs.mode & 0o7777);
        if (typeof attrs.uid === 'number' && typeof attrs.gid === 'number') {
          await chown(realPath, attrs.uid, attrs.gid);
        }
        if (typeof attrs.atime === 'number' && typeof attrs.mtime === 'number') {
          await utimes(realPath, attrs.atime, attrs.mtime);
        }
        ok(reqId);
      });
    });

    sftp.on('CLOSE', (reqId, handle) => {
      serve(reqId, 'close', '', async () => {
        const key = handle.toString('hex');
        const entry = handles.get(key);
        if (!entry) throw new SftpStatus(STATUS.FAILURE, 'invalid handle');
        handles.delete(key);
        await closeHandle(entry);
        ok(reqId);
      });
    });

    sftp.on('OPENDIR', (reqId, path) => {
      serve(reqId, 'opendir', path, async () => {
        const virtualPath = jail.virtual(path);
        const realPath = await jail.real(virtualPath, true);
        const dir = await opendir(realPath);
        sftp.handle(reqId, addHandle({ kind: 'dir', dir, virtualPath, realPath, dotsSent: false }));
      });
    });

    sftp.on('READDIR', (reqId, handle) => {
      serve(reqId, 'readdir', '', async () => {
        const entry = getHandle(handle, 'dir');
        const names: FileEntry[] = [];
        if (!entry.dotsSent) {
          // OpenSSH lists `.` and `..` too; clients must cope with them, so the demo shows them.
          entry.dotsSent = true;
          const parentReal = entry.virtualPath === '/' ? entry.realPath : dirname(entry.realPath);
          names.push(toEntry('.', await stat(entry.realPath)), toEntry('..', await stat(parentReal)));
        }
        while (names.length < READDIR_BATCH_ENTRIES) {
          const dirent = await entry.dir.read();
          if (!dirent) break;
          // Attributes of the entry itself, as OpenSSH does: a link shows as a link, never its target.
          const stats = await lstat(join(entry.realPath, dirent.name)).catch(() => undefined);
          if (stats) names.push(toEntry(dirent.name, stats));
        }
        if (names.length === 0) throw new SftpStatus(STATUS.EOF, 'end of folder');
        counters.readdirBatches += 1;
        sftp.name(reqId, names);
      });
    });

    for (const event of ['STAT', 'LSTAT'] as const) {
      sftp.on(event, (reqId: number, path: string) => {
        serve(reqId, event.toLowerCase(), path, async () => {
          const follow = event === 'STAT';
          const realPath = await jail.real(jail.virtual(path), follow);
          sftp.attrs(reqId, toAttrs(follow ? await stat(realPath) : await lstat(realPath)));
        });
      });
    }

    sftp.on('REALPATH', (reqId, path) => {
      serve(reqId, 'realpath', path, async () => {
        const virtualPath = jail.virtual(path);
        // A missing path still gets its normalised name: clients compute names of files they will create.
        const resolved = await jail.real(virtualPath, true).then(
          (realPath) => jail.toVirtual(realPath),
          (err: unknown) => {
            if (errnoOf(err) === 'ENOENT') return virtualPath;
            throw err;
          },
        );
        sftp.name(reqId, [{ filename: resolved, longname: resolved, attrs: {} as Attributes }]);
      });
    });

    sftp.on('READLINK', (reqId, path) => {
      serve(reqId, 'readlink', path, async () => {
        const linkReal = await jail.real(jail.virtual(path), false);
        const targetReal = resolve(dirname(linkReal), await readlink(linkReal));
        const targetVirtual = jail.toVirtualIfInside(targetReal);
        if (targetVirtual === undefined) {
          throw new SftpStatus(STATUS.PERMISSION_DENIED, `link points outside the served folder: ${path}`);
        }
        sftp.name(reqId, [{ filename: targetVirtual, longname: targetVirtual, attrs: {} as Attributes }]);
      });
    });

    sftp.on('REMOVE', (reqId, path) => {
      serve(reqId, 'remove', path, async () => {
        await unlink(await jail.realToChange(path));
        ok(reqId);
      });
    });

    sftp.on('RMDIR', (reqId, path) => {
      serve(reqId, 'rmdir', path, async () => {
        await rmdir(await jail.realToChange(path));
        ok(reqId);
      });
    });

    sftp.on('MKDIR', (reqId, path, attrs) => {
      serve(reqId, 'mkdir', path, async () => {
        const mode = typeof attrs.mode === 'number' ? attrs.mode & 0o7777 : 0o755;
        await mkdir(await jail.realToChange(path), { mode });
        ok(reqId);
      });
    });

    sftp.on('RENAME', (reqId, oldPath, newPath) => {
      serve(reqId, 'rename', oldPath, async () => {
        const fromReal = await jail.realToChange(oldPath);
        const toReal = await jail.realToChange(newPath);
        // SFTP v3 rename never replaces (OpenSSH links then unlinks): refuse an existing target.
        const existing = await lstat(toReal).catch(() => undefined);
        if (existing) throw new SftpStatus(STATUS.FAILURE, `target exists: ${jail.virtual(newPath)}`);
        await rename(fromReal, toReal);
        ok(reqId);
      });
    });
  }

  const netServer = createServer((socket) => {
    const key = socketKey(socket.remoteAddress ?? '', socket.remotePort ?? 0);
    sockets.set(key, socket);
    socket.on('error', (err) => log(`socket ${key}: ${err.message}`));
    socket.once('close', () => sockets.delete(key));
    sshServer.injectSocket(socket);
  });
  const host = options.host ?? '127.0.0.1';
  const port = await listen(netServer, host, options.port ?? 0);
  log(`listening on ${host}:${port}, serving ${rootReal}`);

  let stopping: Promise<void> | undefined;
  return {
    host,
    port,
    rootDir: rootReal,
    hostKeyFingerprint: `SHA256:${createHash('sha256').update(hostKeyBlob).digest('base64').replace(/=+$/, '')}`,
    hostPublicKey: `${hostKey.type} ${hostKeyBlob.toString('base64')}`,
    clientConnections: () => sockets.size,
    setFaults(next: EmbeddedSftpFaults): void {
      faults = { ...next };
      faultEpoch += 1;
    },
    counters: () => ({ ...counters }),
    stop(): Promise<void> {
      stopping ??= stopServer(netServer, [...sockets.values()]).then(async () => {
        await Promise.allSettled([...pendingCleanups]);
      });
      return stopping;
    },
  };
}

async function stopServer(netServer: NetServer, sockets: Socket[]): Promise<void> {
  const closed = new Promise<void>((resolveClose) => netServer.close(() => resolveClose()));
  const socketsClosed = sockets.map(
    (socket) => new Promise<void>((resolveSocket) => socket.once('close', () => resolveSocket())),
  );
  for (const socket of sockets) socket.destroy();
  // Local sockets close at once; the timer only guards against a bug leaving a test hanging.
  const timer = new Promise<void>((resolveTimer) => setTimeout(resolveTimer, STOP_TIMEOUT_MS).unref());
  await Promise.race([Promise.all([closed, ...socketsClosed]), timer]);
}

function listen(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new SyncError(
          'E_CONNECTION',
          `embedded SFTP server cannot listen on ${host}:${port}: ${err.message}`,
          {
            op: 'start-sftp-server',
            hint: 'choose another port, or port 0 for a free one',
            cause: err,
          },
        ),
      ),
    );
    server.listen(port, host, () => {
      const address = server.address();
      resolveListen(typeof address === 'object' && address ? address.port : port);
    });
  });
}

function authenticate(
  ctx: AuthContext,
  username: string,
  clientKey: ParsedKey | undefined,
  password: string | undefined,
): boolean {
  const methods: ('publickey' | 'password')[] = [];
  if (clientKey) methods.push('publickey');
  if (password !== undefined) methods.push('password');
  const userOk = safeEqual(Buffer.from(ctx.username), Buffer.from(username));
  if (userOk && ctx.method === 'publickey' && clientKey) {
    if (safeEqual(ctx.key.data, clientKey.getPublicSSH())) {
      // Without a signature the client only asks whether this key would be accepted.
      if (!ctx.signature || !ctx.blob || clientKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) {
        ctx.accept();
        return true;
      }
    }
  }
  if (userOk && ctx.method === 'password' && password !== undefined) {
    if (safeEqual(Buffer.from(ctx.password), Buffer.from(password))) {
      ctx.accept();
      return true;
    }
  }
  ctx.reject(methods);
  return false;
}

/** Constant-time over equal-length digests, so neither length nor content leaks through timing. */
function safeEqual(a: Buffer, b: Buffer): boolean {
  const digest = (value: Buffer): Buffer => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** Maps the client's path to a real path inside the root, refusing anything that would leave it. */
class PathJail {
  constructor(private readonly rootReal: string) {}

  /** Normalised absolute POSIX path; relative paths start at `/` (the login folder). */
  virtual(clientPath: string): string {
    if (clientPath.includes('\0')) throw new SftpStatus(STATUS.NO_SUCH_FILE, 'path contains NUL');
    return posix.resolve('/', clientPath);
  }

  /**
   * `follow`: the final name may be a link, followed only when its target stays inside.
   * Otherwise only the parent folders are resolved (lstat, remove, rename, mkdir).
   */
  async real(virtualPath: string, follow: boolean): Promise<string> {
    const localPath = join(this.rootReal, ...virtualPath.split('/').filter(Boolean));
    if (virtualPath === '/') return this.rootReal;
    if (!follow) {
      return join(await this.real(posix.dirname(virtualPath), true), posix.basename(virtualPath));
    }
    try {
      return this.inside(await realpath(localPath), virtualPath);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    // Missing: the parent must resolve inside, and the name must not be a dangling link
    // (creating through it would create its target, wherever that is).
    const candidate = join(await this.real(posix.dirname(virtualPath), true), posix.basename(virtualPath));
    const existing = await lstat(candidate).catch(() => undefined);
    if (existing?.isSymbolicLink()) {
      throw new SftpStatus(STATUS.PERMISSION_DENIED, `dangling link not followed: ${virtualPath}`);
    }
    // Created by a concurrent request since realpath failed: resolve it like any existing path.
    if (existing) return this.inside(await realpath(candidate), virtualPath);
    return candidate;
  }

  /** For remove, rmdir, mkdir, rename: the final name is not followed, and the root itself never changes. */
  async realToChange(clientPath: string): Promise<string> {
    const virtualPath = this.virtual(clientPath);
    if (virtualPath === '/') throw new SftpStatus(STATUS.PERMISSION_DENIED, 'the root folder cannot change');
    return this.real(virtualPath, false);
  }

  toVirtual(realPath: string): string {
    return `/${relative(this.rootReal, realPath).split(sep).filter(Boolean).join('/')}`;
  }

  toVirtualIfInside(realPath: string): string | undefined {
    const rel = relative(this.rootReal, realPath);
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
    return this.toVirtual(realPath);
  }

  private inside(realPath: string, virtualPath: string): string {
    if (this.toVirtualIfInside(realPath) === undefined) {
      throw new SftpStatus(STATUS.PERMISSION_DENIED, `link leads outside the served folder: ${virtualPath}`);
    }
    return realPath;
  }
}

function openFlags(pflags: number): number {
  const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_EXCL, O_APPEND } = fsConstants;
  const readable = (pflags & OPEN_MODE.READ) !== 0;
  const writable = (pflags & OPEN_MODE.WRITE) !== 0;
  let flags = readable && writable ? O_RDWR : writable ? O_WRONLY : O_RDONLY;
  if (pflags & OPEN_MODE.CREAT) flags |= O_CREAT;
  if (pflags & OPEN_MODE.TRUNC) flags |= O_TRUNC;
  if (pflags & OPEN_MODE.EXCL) flags |= O_EXCL;
  if (pflags & OPEN_MODE.APPEND) flags |= O_APPEND;
  return flags;
}

function matchesFailPaths(failPaths: EmbeddedSftpFaults['failPaths'], virtualPath: string): boolean {
  if (!failPaths) return false;
  if (typeof failPaths === 'function') return failPaths(virtualPath);
  return failPaths.some((path) => posix.resolve('/', path) === virtualPath);
}

async function closeHandle(entry: OpenHandle): Promise<void> {
  if (entry.kind === 'file') await entry.file.close();
  else await entry.dir.close();
}

function toAttrs(stats: Stats): Attributes {
  return {
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    atime: Math.floor(stats.atimeMs / 1000),
    mtime: Math.floor(stats.mtimeMs / 1000),
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const HALF_YEAR_MS = 182 * 24 * 3600 * 1000;

/** `ls -l` style, as OpenSSH's sftp-server writes it; some clients parse it. */
function toEntry(filename: string, stats: Stats): FileEntry {
  const kind = stats.isDirectory() ? 'd' : stats.isSymbolicLink() ? 'l' : '-';
  const bits = 'rwxrwxrwx'
    .split('')
    .map((letter, i) => (stats.mode & (1 << (8 - i)) ? letter : '-'))
    .join('');
  const when = new Date(stats.mtimeMs);
  const recent = Math.abs(Date.now() - stats.mtimeMs) < HALF_YEAR_MS;
  const clock = recent
    ? `${String(when.getHours()).padStart(2, '0')}:${String(when.getMinutes()).padStart(2, '0')}`
    : ` ${when.getFullYear()}`;
  const date = `${MONTHS[when.getMonth()]} ${String(when.getDate()).padStart(2)} ${clock}`;
  const longname = `${kind}${bits} ${String(stats.nlink).padStart(4)} ${String(stats.uid).padEnd(8)} ${String(
    stats.gid,
  ).padEnd(8)} ${String(stats.size).padStart(8)} ${date} ${filename}`;
  return { filename, longname, attrs: toAttrs(stats) };
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Node errno to SFTP v3 status; messages name the virtual path, never the real one. */
function toStatus(err: unknown, clientPath: string): { status: number; message: string } {
  if (err instanceof SftpStatus) return { status: err.status, message: err.message };
  const errno = errnoOf(err) ?? 'error';
  const where = clientPath ? `: ${clientPath}` : '';
  switch (errno) {
    case 'ENOENT':
    case 'ENOTDIR':
      return { status: STATUS.NO_SUCH_FILE, message: `no such file${where}` };
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return { status: STATUS.PERMISSION_DENIED, message: `permission denied${where}` };
    default:
      return { status: STATUS.FAILURE, message: `${errno}${where}` };
  }
}

function socketKey(ip: string, port: number): string {
  return `${ip}|${port}`;
}

function parseKeyOrThrow(key: string | Buffer | ParsedKey): ParsedKey {
  if (typeof key === 'object' && !Buffer.isBuffer(key)) return key;
  const parsed = ssh2.utils.parseKey(key);
  const first = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
  if (!first || first instanceof Error) {
    throw new SyncError('E_CONFIG', `embedded SFTP server got a key it cannot parse: ${String(first)}`, {
      op: 'start-sftp-server',
      hint: 'pass an OpenSSH public key line or an unencrypted private key',
    });
  }
  return first;
}

async function realRootOrThrow(rootDir: string): Promise<string> {
  try {
    const rootReal = await realpath(rootDir);
    if (!(await stat(rootReal)).isDirectory())
      throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    return rootReal;
  } catch (err) {
    throw new SyncError('E_NOT_FOUND', `embedded SFTP server root is not a folder: ${rootDir}`, {
      op: 'start-sftp-server',
      path: rootDir,
      hint: 'create the folder first',
      cause: err,
    });
  }
}
