import { commonShape, toCommonConfig } from './common-schema.js';
import type { CopierConfig, DestinationConfig } from './config-types.js';
import { parseSftpUrl } from './parse-sftp-url.js';
import {
  booleanValue,
  durationMs,
  globList,
  jobName,
  type LoadContext,
  localPath,
  listOf,
  nonEmptyString,
  oneOf,
  resolveLocalPath,
  sftpConnectionShape,
  sizeBytes,
  strictMapping,
  toSftpConnection,
  trimRemotePath,
} from './schema-parts.js';

function destinationShape() {
  return {
    name: jobName,
    enabled: booleanValue.default(true),
    path: nonEmptyString.optional(),
    url: nonEmptyString.optional(),
    ...sftpConnectionShape,
    // For a local destination there is no host; for an SFTP one they may come from `url`.
    host: nonEmptyString.optional(),
    username: nonEmptyString.optional(),
    include: globList.default([]),
    exclude: globList.default([]),
    on_conflict: oneOf(['overwrite', 'skip', 'rename', 'fail']).default('overwrite'),
    verify: oneOf(['size', 'sha256']).default('size'),
    min_free_space: sizeBytes.default(0),
    link: oneOf(['copy', 'hardlink']).default('copy'),
    preserve_mtime: booleanValue.default(true),
  };
}

function destinationSchema(ctx: LoadContext) {
  const what = 'a destination: a mapping with name: and path: (or url:)';
  return strictMapping(destinationShape(), what).transform((raw): DestinationConfig => {
    const base = {
      name: raw.name,
      enabled: raw.enabled,
      include: raw.include,
      exclude: raw.exclude,
      onConflict: raw.on_conflict,
      verify: raw.verify,
      minFreeSpaceBytes: raw.min_free_space,
      preserveMtime: raw.preserve_mtime,
    };
    const url = raw.url === undefined ? undefined : parseSftpUrl(raw.url);
    if (url === undefined && raw.host === undefined) {
      return {
        ...base,
        kind: 'local',
        path: resolveLocalPath(raw.path ?? '.', ctx),
        link: raw.link,
      };
    }
    // Missing host, user or path are reported by the semantic rules; placeholders keep the shape.
    const fromUrl = typeof url === 'object' ? url : undefined;
    const sftp = toSftpConnection(
      {
        ...raw,
        host: raw.host ?? fromUrl?.host ?? '',
        username: raw.username ?? fromUrl?.username ?? '',
        port: fromUrl?.port ?? raw.port,
      },
      ctx,
    );
    return { ...base, kind: 'sftp', path: trimRemotePath(raw.path ?? fromUrl?.path ?? '.'), sftp };
  });
}

function copierShape(ctx: LoadContext) {
  return {
    // Many small files need many copies in flight to keep the disk's syncs overlapping (scripts/bench).
    ...commonShape(ctx, { intervalMs: 10_000, concurrencyLimit: 32 }),
    incoming: localPath(ctx),
    min_age: durationMs.default(0),
    done_dir: localPath(ctx).optional(),
    unmatched: oneOf(['keep', 'move']).default('keep'),
    unmatched_dir: localPath(ctx).optional(),
    watch: booleanValue.default(false),
    destinations: listOf(destinationSchema(ctx), 'destination'),
  };
}

export function copierSchema(ctx: LoadContext, configPath: string) {
  return strictMapping(copierShape(ctx), 'a mapping of keys').transform(
    (raw): CopierConfig => ({
      kind: 'copier',
      ...toCommonConfig(raw, configPath),
      incoming: raw.incoming,
      minAgeMs: raw.min_age,
      ...(raw.done_dir !== undefined ? { doneDir: raw.done_dir } : {}),
      unmatched: raw.unmatched,
      ...(raw.unmatched_dir !== undefined ? { unmatchedDir: raw.unmatched_dir } : {}),
      watch: raw.watch,
      destinations: raw.destinations,
    }),
  );
}

/** Valid keys by key-path pattern, for "did you mean" suggestions. */
export const copierKeys = {
  '': Object.keys(copierShape({ configDir: '/', env: {} })),
  'destinations.*': Object.keys(destinationShape()),
};
