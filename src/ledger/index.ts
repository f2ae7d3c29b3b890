export {
  type CommandName,
  type DeliveryRecord,
  type FetchKey,
  type FetchRecord,
  type IncomingFileKey,
  incomingFileId,
  type Ledger,
  type PassRecord,
} from './ledger.js';
export {
  openSqliteLedger,
  type SqliteLedger,
  type SqliteLedgerOptions,
  type SqliteLedgerStats,
} from './sqlite-ledger.js';
export {
  type AcquireStateLockOptions,
  acquireStateLock,
  type StateLock,
  type StateLockHolder,
  type StaleLockTakeover,
} from './state-lock.js';
