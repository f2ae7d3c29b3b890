import type { EntryType } from './storage.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** The entry type from POSIX `st_mode` bits, which both `fs.Stats` and SFTP attributes carry. */
export function entryTypeOfMode(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'link';
    default:
      return 'other';
  }
}
