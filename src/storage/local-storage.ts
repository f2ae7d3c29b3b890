import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  type Stats,
  statSync,
  unlinkSync,
  utimesSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { toSyncError } from '../errors/index.js';
import { diskFreeBytes } from './disk-free-bytes.js';
import { entryTypeOfMode } from './entry-type.js';
import { copyLocalFile } from './local-copy-file.js';
import { localList } from './local-list.js';
import { openLocalReadStream } from './local-read-stream.js';
import { renameLocal } from './local-rename.js';
import type { Storage, StorageStat } from './storage.js';

/**
 * The Storage of the local disk: absolute local paths, Node's fs underneath, errors
 * mapped with `toSyncError` (op, path). `download` and `upload` are both local
 * copies here (the source or target is simply on this disk too).
 *
 * Metadata calls (stat, mkdir, rename, unlink, utimes, chmod, readlink) are direct
 * system calls: on a local disk each takes a few microseconds, while a trip through
 * libuv's thread pool costs several times that in thread hand-offs, and with
 * thousands of small files those hand-offs were most of the work (strace: 27 futex
 * calls per fetched file). Bytes and fsyncs stay on the thread pool: they wait on
 * the disk.
 */
export function createLocalStorage(): Storage {
  return {
    kind: 'local',
    label: 'local',

    list(dirPath, options = {}) {
      return localList(dirPath, options);
    },

    stat(path, options = {}) {
      return call('stat', path, () =>
        toStorageStat(options.followLinks === false ? lstatSync(path) : statSync(path)),
      );
    },

    readLink(path) {
      return call('readLink', path, () => readlinkSync(path));
    },

    realPath(path) {
      return call('realPath', path, () => realpathSync(path));
    },

    openRead(path, options = {}) {
      return openLocalReadStream(path, options);
    },

    download(srcPath, localPath, options = {}) {
      return copyLocalFile(srcPath, localPath, options, 'download');
    },

    upload(localPath, dstPath, options = {}) {
      return copyLocalFile(localPath, dstPath, options, 'upload');
    },

    rename(fromPath, toPath, options) {
      return renameLocal(fromPath, toPath, options.overwrite);
    },

    remove(path) {
      return call('remove', path, () => unlinkSync(path));
    },

    removeDir(path) {
      return call('removeDir', path, () => rmdirSync(path));
    },

    mkdirp(path, options = {}) {
      return call('mkdirp', path, () => {
        const firstCreated = mkdirSync(path, {
          recursive: true,
          ...(options.mode === undefined ? {} : { mode: options.mode }),
        });
        if (options.mode !== undefined && firstCreated !== undefined)
          chmodCreated(firstCreated, path, options.mode);
      });
    },

    setTimes(path, mtimeMs) {
      const seconds = mtimeMs / 1000;
      return call('setTimes', path, () => utimesSync(path, seconds, seconds));
    },

    setMode(path, mode) {
      return call('setMode', path, () => chmodSync(path, mode));
    },

    freeSpace(path) {
      return diskFreeBytes(path);
    },

    close() {
      return Promise.resolve();
    },
  };
}

/**
 * mkdir's mode passes through the umask, but a configured `dir_mode` is meant
 * exactly: the folders this call made (`firstCreated` down to `path`) get it, and
 * folders that already existed are left alone.
 */
function chmodCreated(firstCreated: string, path: string, mode: number): void {
  for (let current = path; ; current = dirname(current)) {
    chmodSync(current, mode);
    if (current === firstCreated || dirname(current) === current) return;
  }
}

/** Runs one direct system call; its answer or its error (mapped) as a promise, like every Storage method. */
function call<T>(op: string, path: string, fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(toSyncError(err, { op, path }));
  }
}

function toStorageStat(stats: Stats): StorageStat {
  return {
    type: entryTypeOfMode(stats.mode),
    sizeBytes: stats.size,
    mtimeMs: stats.mtimeMs,
    mode: stats.mode,
  };
}
