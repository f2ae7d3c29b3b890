/**
 * A tiny SFTP server (ssh2's server API) that serves in-memory files and answers
 * every READ with at most `maxReadBytes`, even when more was asked and is there:
 * the behaviour behind ssh2 #1166, which OpenSSH's sftp-server cannot be made to
 * show. It can also misreport a file's size (as a file that grows or shrinks while
 * it is read would). It offers no SFTP extensions, so clients must fall back to
 * plain v3 (rename without posix-rename, no statvfs). Any user and any
 * credentials are accepted.
 */
import type { Server as NetServer, Socket } from 'node:net';
import ssh2 from 'ssh2';
import { fingerprintOf } from './sshd-fixture.js';
import { generateEd25519KeyPair } from '../../src/demo/generate-key-pair.js';

const STATUS = ssh2.utils.sftp.STATUS_CODE;

export interface ShortReadServerOptions {
  /** Remote path → content. */
  files: Record<string, Buffer>;
  /** Most bytes one READ answer carries. */
  maxReadBytes: number;
  /** Remote path → the size FSTAT/STAT report instead of the real one. */
  reportedSizeBytes?: Record<string, number>;
}

export interface ShortReadServer {
  readonly host: string;
  readonly port: number;
  readonly hostKeyFingerprint: string;
  /** READ answers cut short so far. */
  readonly shortReads: number;
  close(): Promise<void>;
}

export async function startShortReadSftpServer(options: ShortReadServerOptions): Promise<ShortReadServer> {
  const keys = generateEd25519KeyPair();
  const publicLine = keys.public.trim().split(' ').slice(0, 2).join(' ');
  let shortReads = 0;
  const sockets = new Set<Socket>();

  const server = new ssh2.Server({ hostKeys: [keys.private] }, (client) => {
    client.on('authentication', (ctx) => ctx.accept());
    client.on('error', () => undefined);
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          const open = new Map<number, string>();
          let nextHandle = 1;
          const handleOf = (id: number): Buffer => {
            const handle = Buffer.alloc(4);
            handle.writeUInt32BE(id);
            return handle;
          };
          const pathOf = (handle: Buffer): string | undefined =>
            handle.length === 4 ? open.get(handle.readUInt32BE(0)) : undefined;
          const attrsOf = (path: string) => ({
            mode: 0o100644,
            uid: 0,
            gid: 0,
            size: options.reportedSizeBytes?.[path] ?? options.files[path]?.length ?? 0,
            atime: 1_700_000_000,
            mtime: 1_700_000_000,
          });

          sftp.on('OPEN', (reqid, filename) => {
            if (!options.files[filename]) return sftp.status(reqid, STATUS.NO_SUCH_FILE);
            const id = nextHandle++;
            open.set(id, filename);
            sftp.handle(reqid, handleOf(id));
          });
          sftp.on('READ', (reqid, handle, offset, length) => {
            const path = pathOf(handle);
            const content = path ? options.files[path] : undefined;
            if (!content) return sftp.status(reqid, STATUS.FAILURE);
            if (offset >= content.length) return sftp.status(reqid, STATUS.EOF);
            const end = Math.min(content.length, offset + Math.min(length, options.maxReadBytes));
            if (end - offset < length && end < content.length) shortReads += 1;
            sftp.data(reqid, content.subarray(offset, end));
          });
          sftp.on('FSTAT', (reqid, handle) => {
            const path = pathOf(handle);
            if (!path) return sftp.status(reqid, STATUS.FAILURE);
            sftp.attrs(reqid, attrsOf(path));
          });
          const statByPath = (reqid: number, path: string) => {
            if (!options.files[path]) return sftp.status(reqid, STATUS.NO_SUCH_FILE);
            sftp.attrs(reqid, attrsOf(path));
          };
          sftp.on('STAT', statByPath);
          sftp.on('LSTAT', statByPath);
          sftp.on('CLOSE', (reqid, handle) => {
            if (handle.length === 4) open.delete(handle.readUInt32BE(0));
            sftp.status(reqid, STATUS.OK);
          });
          // Plain SFTP v3 only (no extensions), so clients must fall back to what v3 offers.
          sftp.on('REMOVE', (reqid, path) => {
            if (!options.files[path]) return sftp.status(reqid, STATUS.NO_SUCH_FILE);
            delete options.files[path];
            sftp.status(reqid, STATUS.OK);
          });
          sftp.on('RENAME', (reqid, fromPath, toPath) => {
            const content = options.files[fromPath];
            if (!content) return sftp.status(reqid, STATUS.NO_SUCH_FILE);
            if (options.files[toPath]) return sftp.status(reqid, STATUS.FAILURE);
            options.files[toPath] = content;
            delete options.files[fromPath];
            sftp.status(reqid, STATUS.OK);
          });
          sftp.on('REALPATH', (reqid, path) =>
            sftp.name(reqid, [
              {
                filename: path,
                longname: path,
                attrs: { mode: 0o40755, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 },
              },
            ]),
          );
        });
      });
    });
  });

  // ssh2's Server is a net.Server underneath; track sockets so close() does not wait for clients.
  const netServer = (server as unknown as { _srv?: NetServer })._srv;
  netServer?.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address() as { port: number };
  return {
    host: '127.0.0.1',
    port: address.port,
    hostKeyFingerprint: fingerprintOf(publicLine),
    get shortReads() {
      return shortReads;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
