import { posix } from 'node:path';
import { isSftpUrlText } from './mirror-schema.js';
import { parseSftpUrl } from './parse-sftp-url.js';
import { type LoadContext, resolveLocalPath, trimRemotePath } from './schema-parts.js';
import {
  asMap,
  at,
  type ConfigProblem,
  checkConnection,
  checkLoop,
  checkStateApart,
  checkUniqueNames,
  isInside,
  isText,
  MISSING,
  mergeSftpUrlKeys,
  SFTP_ONLY_KEYS,
} from './semantic-rules.js';

type RawMap = Record<string, unknown>;
type KeyPath = (string | number)[];

/** Where one end of a job is, as far as the rules can tell from the raw tree. */
type EndpointPlace =
  | { kind: 'local'; path: string }
  | { kind: 'sftp'; server: string; username: string; path: string };

interface JobPlaces {
  index: number;
  source?: EndpointPlace;
  replica?: EndpointPlace;
}

/** Job keys that describe an SFTP connection: they apply to the job's end written as an sftp:// URL. */
const JOB_CONNECTION_KEYS = ['username', ...SFTP_ONLY_KEYS.filter((key) => key !== 'username')] as const;

/**
 * The mirror's rules beyond types: each job's ends (local, URL or mapping; one of
 * them local), ends that nest, jobs whose replicas overlap or whose replica is
 * another job's source, backup_dir placement, and state and logs kept apart from
 * every folder a job writes or reads. Reads the raw tree defensively.
 */
export function mirrorRules(tree: unknown, ctx: LoadContext): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const root = asMap(tree);
  if (!root) return problems;
  checkLoop(root, problems);

  const jobs = Array.isArray(root.jobs) ? root.jobs : [];
  checkUniqueNames(jobs, 'jobs', problems);
  const places: JobPlaces[] = [];
  const localDataDirs: [string, string][] = [];
  jobs.forEach((item, index) => {
    const job = asMap(item);
    if (!job) return;
    const path: KeyPath = ['jobs', index];
    const source = checkEndpoint(job, 'source', path, ctx, problems);
    const replica = checkEndpoint(job, 'replica', path, ctx, problems);
    places.push({ index, ...(source ? { source } : {}), ...(replica ? { replica } : {}) });
    checkJobConnectionKeys(job, path, problems);
    if (source?.kind === 'sftp' && replica?.kind === 'sftp') {
      problems.push(
        at(path, 'source and replica are both SFTP: one end must be a local folder (mirror in two steps)'),
      );
    }
    if (source && replica) checkEndsApart(source, replica, path, problems);
    if (job.links === 'copy-as-link' && replica?.kind === 'sftp') {
      problems.push(
        at([...path, 'links'], 'links: copy-as-link needs a local replica; use skip or follow for SFTP'),
      );
    }
    const backup = checkBackupDir(job, source, replica, path, ctx, problems);
    for (const [key, place] of [
      ['source', source],
      ['replica', replica],
      ['backup_dir', backup],
    ] as const) {
      if (place?.kind === 'local') localDataDirs.push([`jobs[${index}].${key}`, place.path]);
    }
  });
  checkJobsApart(places, problems);
  checkStateApart(root, ctx, localDataDirs, problems, 'mirrored folders');
  return problems;
}

/** `source:` or `replica:` of one job: its form, and where it points. */
function checkEndpoint(
  job: RawMap,
  key: 'source' | 'replica',
  jobPath: KeyPath,
  ctx: LoadContext,
  problems: ConfigProblem[],
): EndpointPlace | undefined {
  const value = job[key];
  const path = [...jobPath, key];
  const what = key === 'source' ? 'the folder to mirror' : 'the folder that becomes its copy';
  if (value === undefined) {
    problems.push(at(path, `${MISSING}: ${what}, a local path or sftp://user@host/folder`));
    return undefined;
  }
  if (typeof value === 'string') {
    if (!isText(value)) return undefined;
    if (!isSftpUrlText(value)) return { kind: 'local', path: resolveLocalPath(value, ctx) };
    const url = parseSftpUrl(value.trim());
    if (typeof url !== 'object') {
      problems.push(at(path, url));
      return undefined;
    }
    if (url.port !== undefined && job.port !== undefined) {
      problems.push(at([...jobPath, 'port'], 'the url already gives the port: keep one of them'));
    }
    if (url.username !== undefined && job.username !== undefined) {
      problems.push(at([...jobPath, 'username'], 'the url already gives the user: keep one of them'));
    }
    if (url.path === '/') {
      problems.push(at(path, 'the URL names no folder: add it, as in sftp://user@host/outbound'));
    }
    const merged = { ...job, host: url.host, username: url.username ?? job.username };
    checkConnection(merged, jobPath, ctx, problems);
    return place(url.host, url.port ?? job.port, merged.username, url.path);
  }
  const endpoint = asMap(value);
  if (!endpoint) return undefined; // the schema names the wrong type
  const isSftp = endpoint.url !== undefined || endpoint.host !== undefined;
  if (!isSftp) {
    for (const sftpKey of SFTP_ONLY_KEYS) {
      if (endpoint[sftpKey] !== undefined) {
        problems.push(
          at(
            [...path, sftpKey],
            `${sftpKey} applies to SFTP ends only; add url or host, or remove ${sftpKey}`,
          ),
        );
      }
    }
    if (!isText(endpoint.path)) {
      problems.push(at([...path, 'path'], `${MISSING}: ${what} (or url: sftp://user@host/folder)`));
      return undefined;
    }
    return { kind: 'local', path: resolveLocalPath(endpoint.path, ctx) };
  }
  const { merged, remotePath } = mergeSftpUrlKeys(
    endpoint,
    path,
    problems,
    'the remote folder of this SFTP end',
  );
  checkConnection(merged, path, ctx, problems);
  if (!isText(merged.host) || remotePath === undefined) return undefined;
  return place(merged.host, merged.port ?? endpoint.port, merged.username, remotePath);
}

function place(host: string, port: unknown, username: unknown, remotePath: string): EndpointPlace {
  return {
    kind: 'sftp',
    server: `${host.toLowerCase()}:${typeof port === 'number' || typeof port === 'string' ? String(port) : '22'}`,
    username: typeof username === 'string' ? username : '',
    path: trimRemotePath(posix.normalize(remotePath.trim())),
  };
}

/** Connection keys on the job itself need an end written as an sftp:// URL string to apply to. */
function checkJobConnectionKeys(job: RawMap, jobPath: KeyPath, problems: ConfigProblem[]): void {
  const urlEnds = (['source', 'replica'] as const).filter(
    (key) => typeof job[key] === 'string' && isSftpUrlText(job[key]),
  );
  if (urlEnds.length > 0) return;
  for (const key of JOB_CONNECTION_KEYS) {
    if (job[key] !== undefined) {
      problems.push(
        at(
          [...jobPath, key],
          `${key} on a job applies to a source or replica written as an sftp:// URL; this job has none (put it in the SFTP end's mapping)`,
        ),
      );
    }
  }
}

function checkEndsApart(
  source: EndpointPlace,
  replica: EndpointPlace,
  jobPath: KeyPath,
  problems: ConfigProblem[],
): void {
  const relation = overlap(replica, source);
  if (relation === 'same') {
    problems.push(at([...jobPath, 'replica'], 'is the source itself: a mirror needs two separate folders'));
  } else if (relation === 'inside') {
    problems.push(
      at(
        [...jobPath, 'replica'],
        `${describe(replica)} is inside the source ${describe(source)}: it would copy itself`,
      ),
    );
  } else if (relation === 'contains') {
    problems.push(
      at(
        [...jobPath, 'replica'],
        `${describe(replica)} contains the source ${describe(source)}: mirroring would delete the source`,
      ),
    );
  }
}

/** backup_dir lives on the replica's side, apart from both ends (a backup inside the replica would be mirrored away). */
function checkBackupDir(
  job: RawMap,
  source: EndpointPlace | undefined,
  replica: EndpointPlace | undefined,
  jobPath: KeyPath,
  ctx: LoadContext,
  problems: ConfigProblem[],
): EndpointPlace | undefined {
  if (!isText(job.backup_dir) || !replica) return undefined;
  const path = [...jobPath, 'backup_dir'];
  if (job.delete === false) {
    problems.push(at(path, 'backup_dir is not used with delete: false (nothing is removed); remove one'));
  }
  const backup: EndpointPlace =
    replica.kind === 'local'
      ? { kind: 'local', path: resolveLocalPath(job.backup_dir, ctx) }
      : { ...replica, path: trimRemotePath(posix.normalize(job.backup_dir.trim())) };
  for (const [label, end] of [
    ['replica', replica],
    ['source', source],
  ] as const) {
    if (!end) continue;
    const relation = overlap(backup, end);
    if (relation === 'same')
      problems.push(at(path, `is the ${label} itself: use a folder beside the replica`));
    else if (relation === 'inside')
      problems.push(at(path, `${describe(backup)} is inside the ${label}: use a folder beside the replica`));
    else if (relation === 'contains')
      problems.push(at(path, `${describe(backup)} contains the ${label}: use a folder beside the replica`));
  }
  return backup;
}

/** Across jobs: no two replicas overlap, and no replica overlaps another job's source. */
function checkJobsApart(places: JobPlaces[], problems: ConfigProblem[]): void {
  places.forEach((job, position) => {
    if (!job.replica) return;
    for (const other of places.slice(0, position)) {
      if (other.replica && overlap(job.replica, other.replica) !== 'apart') {
        problems.push(
          at(
            ['jobs', job.index, 'replica'],
            `overlaps the replica of jobs[${other.index}] (${describe(other.replica)}): two jobs would delete each other's files`,
          ),
        );
      }
    }
    for (const other of places) {
      if (other === job || !other.source) continue;
      if (overlap(job.replica, other.source) !== 'apart') {
        problems.push(
          at(
            ['jobs', job.index, 'replica'],
            `overlaps the source of jobs[${other.index}] (${describe(other.source)}): a replica may not feed or hold another job's source`,
          ),
        );
      }
    }
  });
}

/** How `a` sits relative to `b`. */
function overlap(a: EndpointPlace, b: EndpointPlace): 'same' | 'inside' | 'contains' | 'apart' {
  if (a.kind !== b.kind) return 'apart';
  if (a.kind === 'sftp' && b.kind === 'sftp') {
    if (a.server !== b.server) return 'apart';
    // A relative remote path is below the login folder, which differs by user.
    const aAbsolute = a.path.startsWith('/');
    if (aAbsolute !== b.path.startsWith('/')) return 'apart';
    if (!aAbsolute && a.username !== b.username) return 'apart';
  }
  if (a.path === b.path) return 'same';
  const inside = a.kind === 'local' ? isInside : isInsideRemote;
  if (inside(a.path, b.path)) return 'inside';
  if (inside(b.path, a.path)) return 'contains';
  return 'apart';
}

function isInsideRemote(child: string, parent: string): boolean {
  const rel = posix.relative(parent === '.' ? '' : parent, child === '.' ? '' : child);
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel));
}

function describe(place: EndpointPlace): string {
  return place.kind === 'local' ? place.path : `sftp://${place.server}/${place.path.replace(/^\//, '')}`;
}
