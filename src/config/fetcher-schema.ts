import { commonShape, toCommonConfig } from './common-schema.js';
import type { FetcherConfig, SourceConfig } from './config-types.js';
import {
  booleanValue,
  durationMs,
  globList,
  intIn,
  jobName,
  type LoadContext,
  localPath,
  listOf,
  nonEmptyString,
  oneOf,
  remotePath,
  sftpConnectionShape,
  sizeBytes,
  strictMapping,
  toSftpConnection,
} from './schema-parts.js';

function sourceShape() {
  return {
    name: jobName,
    enabled: booleanValue.default(true),
    ...sftpConnectionShape,
    remote_dir: remotePath,
    recursive: booleanValue.default(false),
    include: globList.default([]),
    exclude: globList.default([]),
    min_age: durationMs.default(0),
    min_size: sizeBytes.optional(),
    max_size: sizeBytes.optional(),
    follow_links: booleanValue.default(false),
    after_fetch: oneOf(['keep', 'delete', 'move']).default('keep'),
    move_to: remotePath.optional(),
    verify: oneOf(['size', 'sidecar']).default('size'),
    max_files_per_pass: intIn(1, 10_000_000).optional(),
    incoming_layout: nonEmptyString.optional(),
  };
}

function sourceSchema(ctx: LoadContext) {
  return strictMapping(
    sourceShape(),
    'a source: a mapping with name:, host:, username:, remote_dir: …',
  ).transform((raw): Omit<SourceConfig, 'incomingLayout'> & { incomingLayout?: string } => ({
    name: raw.name,
    enabled: raw.enabled,
    ...toSftpConnection(raw, ctx),
    remoteDir: raw.remote_dir,
    recursive: raw.recursive,
    include: raw.include,
    exclude: raw.exclude,
    minAgeMs: raw.min_age,
    ...(raw.min_size !== undefined ? { minSizeBytes: raw.min_size } : {}),
    ...(raw.max_size !== undefined ? { maxSizeBytes: raw.max_size } : {}),
    followLinks: raw.follow_links,
    afterFetch: raw.after_fetch,
    ...(raw.move_to !== undefined ? { moveTo: raw.move_to } : {}),
    verify: raw.verify,
    ...(raw.max_files_per_pass !== undefined ? { maxFilesPerPass: raw.max_files_per_pass } : {}),
    ...(raw.incoming_layout !== undefined ? { incomingLayout: raw.incoming_layout } : {}),
  }));
}

function fetcherShape(ctx: LoadContext) {
  return {
    // Many small files need many in flight to hide their round trips (measured: scripts/bench).
    ...commonShape(ctx, { intervalMs: 60_000, concurrencyLimit: 32 }),
    incoming: localPath(ctx),
    archive: localPath(ctx).optional(),
    archive_layout: nonEmptyString.default('{source}/{path}'),
    incoming_layout: nonEmptyString.default('{source}/{path}'),
    min_free_space: sizeBytes.default(0),
    sources: listOf(sourceSchema(ctx), 'source'),
  };
}

export function fetcherSchema(ctx: LoadContext, configPath: string) {
  return strictMapping(fetcherShape(ctx), 'a mapping of keys').transform(
    (raw): FetcherConfig => ({
      kind: 'fetcher',
      ...toCommonConfig(raw, configPath),
      incoming: raw.incoming,
      ...(raw.archive !== undefined ? { archive: raw.archive } : {}),
      archiveLayout: raw.archive_layout,
      minFreeSpaceBytes: raw.min_free_space,
      sources: raw.sources.map((source) => ({
        ...source,
        incomingLayout: source.incomingLayout ?? raw.incoming_layout,
      })),
    }),
  );
}

/** Valid keys by key-path pattern, for "did you mean" suggestions. */
export const fetcherKeys = {
  '': Object.keys(fetcherShape({ configDir: '/', env: {} })),
  'sources.*': Object.keys(sourceShape()),
};
