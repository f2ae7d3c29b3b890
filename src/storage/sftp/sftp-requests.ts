import type { FileEntryWithStats, InputAttributes, Stats } from 'ssh2';
import type { SftpSession } from './sftp-session.js';

/**
 * Typed, promise-returning SFTP requests, each under the session's operation
 * deadline and mapped to SyncError with op, path and host. `op` names the storage
 * operation the request belongs to (`download`, `rename`, …), so errors say what
 * the caller was doing.
 */

export interface StatvfsResult {
  f_frsize: number;
  f_bavail: number;
}

/** READDIR answers end-of-directory with status EOF; ssh2 reports it as this error code. */
const SFTP_EOF = 1;

export function openFile(
  session: SftpSession,
  op: string,
  path: string,
  flags: 'r' | 'w' | 'wx',
  attrs?: InputAttributes,
): Promise<Buffer> {
  return session.request<Buffer>({ op, path }, (done) =>
    attrs ? session.sftp.open(path, flags, attrs, done) : session.sftp.open(path, flags, done),
  );
}

export function closeHandle(session: SftpSession, op: string, path: string, handle: Buffer): Promise<void> {
  return session.request<void>({ op, path }, (done) => session.sftp.close(handle, done));
}

export function fstatHandle(session: SftpSession, op: string, path: string, handle: Buffer): Promise<Stats> {
  return session.request<Stats>({ op, path }, (done) => session.sftp.fstat(handle, done));
}

export function statPath(session: SftpSession, op: string, path: string): Promise<Stats> {
  return session.request<Stats>({ op, path }, (done) => session.sftp.stat(path, done));
}

export function lstatPath(session: SftpSession, op: string, path: string): Promise<Stats> {
  return session.request<Stats>({ op, path }, (done) => session.sftp.lstat(path, done));
}

export function openDir(session: SftpSession, op: string, path: string): Promise<Buffer> {
  return session.request<Buffer>({ op, path }, (done) => session.sftp.opendir(path, done));
}

/** One READDIR batch (the server decides its size; OpenSSH sends up to 100); null at the end. */
export function readDirBatch(
  session: SftpSession,
  op: string,
  path: string,
  handle: Buffer,
): Promise<FileEntryWithStats[] | null> {
  return session.request<FileEntryWithStats[] | null>({ op, path }, (done) =>
    session.sftp.readdir(handle, (err, list) => {
      if (err && (err as { code?: unknown }).code === SFTP_EOF) done(undefined, null);
      else done(err, list);
    }),
  );
}

export function readLink(session: SftpSession, op: string, path: string): Promise<string> {
  return session.request<string>({ op, path }, (done) => session.sftp.readlink(path, done));
}

export function realPath(session: SftpSession, op: string, path: string): Promise<string> {
  return session.request<string>({ op, path }, (done) => session.sftp.realpath(path, done));
}

export function removeFile(session: SftpSession, op: string, path: string): Promise<void> {
  return session.request<void>({ op, path }, (done) => session.sftp.unlink(path, done));
}

export function removeEmptyDir(session: SftpSession, op: string, path: string): Promise<void> {
  return session.request<void>({ op, path }, (done) => session.sftp.rmdir(path, done));
}

export function makeDir(session: SftpSession, op: string, path: string, mode?: number): Promise<void> {
  return session.request<void>({ op, path }, (done) =>
    mode === undefined ? session.sftp.mkdir(path, done) : session.sftp.mkdir(path, { mode }, done),
  );
}

/** Plain SFTP rename: fails when the target exists (OpenSSH uses link+unlink for files, so no race). */
export function renamePlain(
  session: SftpSession,
  op: string,
  fromPath: string,
  toPath: string,
): Promise<void> {
  return session.request<void>({ op, path: fromPath, dstPath: toPath }, (done) =>
    session.sftp.rename(fromPath, toPath, done),
  );
}

/** posix-rename@openssh.com: rename(2) on the server, replacing the target atomically. */
export function renamePosix(
  session: SftpSession,
  op: string,
  fromPath: string,
  toPath: string,
): Promise<void> {
  return session.request<void>({ op, path: fromPath, dstPath: toPath }, (done) =>
    session.sftp.ext_openssh_rename(fromPath, toPath, done),
  );
}

export function setTimes(session: SftpSession, op: string, path: string, atimeSec: number, mtimeSec: number) {
  return session.request<void>({ op, path }, (done) => session.sftp.utimes(path, atimeSec, mtimeSec, done));
}

export function setMode(session: SftpSession, op: string, path: string, mode: number): Promise<void> {
  return session.request<void>({ op, path }, (done) => session.sftp.chmod(path, mode, done));
}

export function setHandleMode(session: SftpSession, op: string, path: string, handle: Buffer, mode: number) {
  return session.request<void>({ op, path }, (done) => session.sftp.fchmod(handle, mode, done));
}

export function setHandleTimes(
  session: SftpSession,
  op: string,
  path: string,
  handle: Buffer,
  atimeSec: number,
  mtimeSec: number,
) {
  return session.request<void>({ op, path }, (done) =>
    session.sftp.futimes(handle, atimeSec, mtimeSec, done),
  );
}

export function fsyncHandle(session: SftpSession, op: string, path: string, handle: Buffer): Promise<void> {
  return session.request<void>({ op, path }, (done) =>
    session.sftp.ext_openssh_fsync(handle, (err) => done(err)),
  );
}

export function statvfs(session: SftpSession, op: string, path: string): Promise<StatvfsResult> {
  return session.request<StatvfsResult>({ op, path }, (done) =>
    session.sftp.ext_openssh_statvfs(path, (err, info: StatvfsResult) => done(err, info)),
  );
}
