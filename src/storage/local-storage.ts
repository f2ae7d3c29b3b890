import type { Stats } from 'node:fs';
import { chmod, lstat, mkdir, readlink, realpath, rmdir, stat, unlink, utimes } from 'node:fs/promises';
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
 */
export function createLocalStorage(): Storage {
  return {
    kind: 'local',
    label: 'local',

    list(dirPath, options = {}) {
      return localList(dirPath, options);
    },

    stat(path, options = {}) {
      return call('stat', path, async () =>
        toStorageStat(options.followLinks === false ? await lstat(path) : await stat(path)),
      );
    },

    readLink(path) {
      return call('readLink', path, () => readlink(path));
    },

    realPath(path) {
      return call('realPath', path, () => realpath(path));
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
      return call('remove', path, () => unlink(path));
    },

    removeDir(path) {
      return call('removeDir', path, () => rmdir(path));
    },

    mkdirp(path, options = {}) {
      return call('mkdirp', path, async () => {
        await mkdir(path, { recursive: true, ...(options.mode === undefined ? {} : { mode: options.mode }) });
      });
    },

    setTimes(path, mtimeMs) {
      const seconds = mtimeMs / 1000;
      return call('setTimes', path, () => utimes(path, seconds, seconds));
    },

    setMode(path, mode) {
      return call('setMode', path, () => chmod(path, mode));
    },

    freeSpace(path) {
      return diskFreeBytes(path);
    },

    close() {
      return Promise.resolve();
    },
  };
}

async function call<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toSyncError(err, { op, path });
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
