import * as z from 'zod';
import { commonShape, toCommonConfig } from './common-schema.js';
import type { MaxDelete, MirrorConfig, MirrorEndpoint, MirrorJobConfig } from './config-types.js';
import { parseSftpUrl } from './parse-sftp-url.js';
import {
  booleanValue,
  globList,
  jobName,
  type LoadContext,
  listOf,
  localPath,
  nonEmptyString,
  oneOf,
  type RawSftpConnection,
  resolveLocalPath,
  sftpConnectionShape,
  strictMapping,
  toSftpConnection,
  trimRemotePath,
} from './schema-parts.js';
import { MISSING } from './semantic-rules.js';

/** Default `max_delete`: a pass may remove at most half of the replica's files. */
export const DEFAULT_MAX_DELETE: MaxDelete = { kind: 'percent', percent: 50 };

/** Default pause between passes, for the config and the inline form alike. */
export const DEFAULT_MIRROR_INTERVAL_MS = 5 * 60_000;

/** `sftp://…` (any case) names an SFTP end; anything else is a local path. */
export function isSftpUrlText(value: string): boolean {
  return /^sftp:\/\//i.test(value.trim());
}

const ENDPOINT_WHAT =
  'a local folder, an sftp:// URL, or a mapping with path: (and host:, username: … for SFTP)';

/** The keys of `source:`/`replica:` written as a mapping. */
function endpointShape() {
  return {
    path: nonEmptyString.optional(),
    url: nonEmptyString.optional(),
    ...sftpConnectionShape,
    host: nonEmptyString.optional(),
    username: nonEmptyString.optional(),
  };
}

/**
 * SFTP connection keys written on the job itself: they apply to its end given as an
 * `sftp://` URL string. The host always comes from the URL.
 */
function jobConnectionShape() {
  const { host: _host, ...rest } = sftpConnectionShape;
  return { ...rest, username: nonEmptyString.optional() };
}

function endpointSchema() {
  const mapping = strictMapping(endpointShape(), ENDPOINT_WHAT);
  return z.union([nonEmptyString, mapping], {
    error: (issue) =>
      issue.input === undefined
        ? `${MISSING} (expected ${ENDPOINT_WHAT})`
        : `expected ${ENDPOINT_WHAT}, got ${issue.input === null ? 'null' : Array.isArray(issue.input) ? 'a list' : typeof issue.input}`,
  });
}

const maxDelete = z
  .union([z.string(), z.number()], { error: 'expected a count such as 100 or a percentage such as "50%"' })
  .transform((value, ctx): MaxDelete => {
    const text = String(value).trim();
    const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
    if (percent) {
      const number = Number(percent[1]);
      if (number <= 100) return { kind: 'percent', percent: number };
    } else if (/^\d+$/.test(text)) {
      return { kind: 'count', count: Number(text) };
    }
    ctx.addIssue({
      code: 'custom',
      message: `expected a count such as 100 or a percentage 0–100% such as "50%", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  });

function jobShape() {
  return {
    name: jobName,
    enabled: booleanValue.default(true),
    source: endpointSchema(),
    replica: endpointSchema(),
    ...jobConnectionShape(),
    include: globList.default([]),
    exclude: globList.default([]),
    compare: oneOf(['size_mtime', 'checksum']).default('size_mtime'),
    links: oneOf(['skip', 'copy-as-link', 'follow']).default('skip'),
    preserve_mode: booleanValue.default(false),
    backup_dir: nonEmptyString.optional(),
    max_delete: maxDelete.optional(),
    delete: booleanValue.default(true),
  };
}

type RawEndpoint = string | z.output<ReturnType<typeof strictMapping<ReturnType<typeof endpointShape>>>>;
type RawJobConnection = Omit<RawSftpConnection, 'host' | 'username'> & { username?: string | undefined };

/**
 * A raw end → typed end. Missing host, user or path are reported by the semantic
 * rules; placeholders keep the shape here.
 */
function toEndpoint(raw: RawEndpoint, job: RawJobConnection, ctx: LoadContext): MirrorEndpoint {
  if (typeof raw === 'string') {
    if (!isSftpUrlText(raw)) return { kind: 'local', path: resolveLocalPath(raw, ctx) };
    const url = parseSftpUrl(raw.trim());
    const parts = typeof url === 'object' ? url : undefined;
    const sftp = toSftpConnection(
      {
        ...job,
        host: parts?.host ?? '',
        username: parts?.username ?? job.username ?? '',
        port: parts?.port ?? job.port,
      },
      ctx,
    );
    return { kind: 'sftp', path: trimRemotePath(parts?.path ?? '.'), sftp };
  }
  const url = raw.url === undefined ? undefined : parseSftpUrl(raw.url);
  if (url === undefined && raw.host === undefined) {
    return { kind: 'local', path: resolveLocalPath(raw.path ?? '.', ctx) };
  }
  const parts = typeof url === 'object' ? url : undefined;
  const sftp = toSftpConnection(
    {
      ...raw,
      host: raw.host ?? parts?.host ?? '',
      username: raw.username ?? parts?.username ?? '',
      port: parts?.port ?? raw.port,
    },
    ctx,
  );
  return { kind: 'sftp', path: trimRemotePath(raw.path ?? parts?.path ?? '.'), sftp };
}

function jobSchema(ctx: LoadContext) {
  return strictMapping(jobShape(), 'a job: a mapping with name:, source: and replica:').transform(
    (raw): MirrorJobConfig => {
      const replica = toEndpoint(raw.replica, raw, ctx);
      return {
        name: raw.name,
        enabled: raw.enabled,
        source: toEndpoint(raw.source, raw, ctx),
        replica,
        include: raw.include,
        exclude: raw.exclude,
        compare: raw.compare,
        links: raw.links,
        preserveMode: raw.preserve_mode,
        ...(raw.backup_dir !== undefined
          ? {
              backupDir:
                replica.kind === 'local'
                  ? resolveLocalPath(raw.backup_dir, ctx)
                  : trimRemotePath(raw.backup_dir.trim()),
            }
          : {}),
        maxDelete: raw.max_delete ?? DEFAULT_MAX_DELETE,
        delete: raw.delete,
      };
    },
  );
}

function mirrorShape(ctx: LoadContext) {
  return {
    ...commonShape(ctx, { intervalMs: DEFAULT_MIRROR_INTERVAL_MS }),
    log_file: localPath(ctx).optional(),
    jobs: listOf(jobSchema(ctx), 'job'),
  };
}

export function mirrorSchema(ctx: LoadContext, configPath: string) {
  return strictMapping(mirrorShape(ctx), 'a mapping of keys').transform(
    (raw): MirrorConfig => ({
      kind: 'mirror',
      ...toCommonConfig(raw, configPath),
      ...(raw.log_file !== undefined ? { logFile: raw.log_file } : {}),
      jobs: raw.jobs,
    }),
  );
}

/** Valid keys by key-path pattern, for "did you mean" suggestions. */
export const mirrorKeys = {
  '': Object.keys(mirrorShape({ configDir: '/', env: {} })),
  'jobs.*': Object.keys(jobShape()),
  'jobs.*.source': Object.keys(endpointShape()),
  'jobs.*.replica': Object.keys(endpointShape()),
};
