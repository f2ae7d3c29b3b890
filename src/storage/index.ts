export type {
  EntryType,
  ListOptions,
  OpenReadOptions,
  Storage,
  StorageEntry,
  StorageStat,
  TransferOptions,
  TransferResult,
} from './storage.js';
export { createLocalStorage } from './local-storage.js';
export { diskFreeBytes } from './disk-free-bytes.js';
export { type CreateSftpStorageOptions, createSftpStorage } from './sftp/sftp-storage.js';
