import type { CommonConfig } from './config-types.js';
import {
  durationIn,
  fileModeBits,
  intIn,
  type LoadContext,
  localPath,
  nonEmptyString,
} from './schema-parts.js';

/** Top-level keys every command's config has. */
export function commonShape(ctx: LoadContext, defaults: { intervalMs: number; concurrencyLimit?: number }) {
  return {
    concurrency_limit: intIn(1, 256).default(defaults.concurrencyLimit ?? 8),
    interval: durationIn({ timer: true }).default(defaults.intervalMs),
    schedule: nonEmptyString.optional(),
    time_zone: nonEmptyString.optional(),
    state_dir: localPath(ctx).default(() => localPath(ctx).parse('var/state')),
    log_dir: localPath(ctx).default(() => localPath(ctx).parse('log')),
    shutdown_grace: durationIn({ timer: true }).default(10_000),
    file_mode: fileModeBits.optional(),
    dir_mode: fileModeBits.optional(),
  };
}

export interface RawCommon {
  concurrency_limit: number;
  interval: number;
  schedule?: string | undefined;
  time_zone?: string | undefined;
  state_dir: string;
  log_dir: string;
  shutdown_grace: number;
  file_mode?: number | undefined;
  dir_mode?: number | undefined;
}

export function toCommonConfig(raw: RawCommon, configPath: string): CommonConfig {
  return {
    configPath,
    concurrencyLimit: raw.concurrency_limit,
    intervalMs: raw.interval,
    ...(raw.schedule !== undefined ? { schedule: raw.schedule } : {}),
    ...(raw.time_zone !== undefined ? { timeZone: raw.time_zone } : {}),
    shutdownGraceMs: raw.shutdown_grace,
    stateDir: raw.state_dir,
    logDir: raw.log_dir,
    ...(raw.file_mode !== undefined ? { fileMode: raw.file_mode } : {}),
    ...(raw.dir_mode !== undefined ? { dirMode: raw.dir_mode } : {}),
  };
}
