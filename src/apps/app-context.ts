import type { Writable } from 'node:stream';
import type { Logger } from '../log/index.js';
import type { PassOutcome } from './run-loop.js';

/** What the CLI hands an app: the loaded config, the logger, the flags, and the two stop signals. */
export interface AppContext<C> {
  config: C;
  log: Logger;
  dryRun: boolean;
  stopOnLoop?: number;
  /** Aborted on the first SIGINT/SIGTERM: start nothing new, let transfers in flight finish. */
  stopSignal: AbortSignal;
  /** Aborted on a second signal: abort transfers in flight now. */
  forceSignal: AbortSignal;
  /** Where command output goes (dry-run lists, summaries, status): stdout. */
  stdout: Writable;
  /** Whether stdout is a terminal: tables and live progress are drawn only then. */
  interactive: boolean;
  /** For `status`: print JSON instead of text. */
  json: boolean;
  /** `-vvv`: SFTP storages log the SSH protocol at trace level. */
  traceProtocol: boolean;
}

export type App<C> = (context: AppContext<C>) => Promise<PassOutcome>;
