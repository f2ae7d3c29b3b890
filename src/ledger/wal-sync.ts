import { closeSync, fstatSync, fsync, openSync, statSync } from 'node:fs';

export interface WalSync {
  /** fsyncs the WAL file on libuv's thread pool: every transaction committed before the call is durable after it. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The fsync that `synchronous=FULL` would do inside every COMMIT (blocking the event
 * loop), done instead from a thread of the pool on a handle of our own. fsync works
 * on the file, not the handle, so it covers what SQLite wrote through its own. The
 * WAL stays the same file while the connection is open (a checkpoint truncates it,
 * never replaces it); a replaced file is noticed all the same and reopened.
 */
export function createWalSync(walPath: string): WalSync {
  let fd: number | undefined;
  let inode: number | undefined;
  // Stat, open and close are direct system calls (microseconds); the fsync waits on the disk.
  const current = (): number => {
    const { ino } = statSync(walPath);
    if (fd === undefined || ino !== inode) {
      if (fd !== undefined) closeQuietly(fd);
      fd = undefined;
      const opened = openSync(walPath, 'r');
      inode = fstatSync(opened).ino;
      fd = opened;
    }
    return fd;
  };
  return {
    async sync() {
      const descriptor = current();
      await new Promise<void>((resolve, reject) =>
        fsync(descriptor, (err) => (err ? reject(err) : resolve())),
      );
    },
    close() {
      if (fd !== undefined) closeQuietly(fd);
      fd = undefined;
      return Promise.resolve();
    },
  };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing was written through this descriptor.
  }
}
