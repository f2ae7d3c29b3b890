/**
 * The ways of pulling a remote folder from the bench's sshd into a fresh local
 * folder: ours (`fetch-files --stop-on-loop 1`, the real CLI with fresh state each
 * run), OpenSSH `sftp -b` (`get -r`), `rsync -a` over ssh, and `rclone copy`.
 * Every peer logs in with the same key and checks the same host key.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import type { SshdFixture } from '../../test/support/sshd-fixture.js';
import type { BenchTool } from './bench-context.js';
import type { Prerequisites } from './prerequisites.js';

export const OURS_FETCH = 'ours fetch-files';

export interface FetchToolsInput {
  sshd: SshdFixture;
  /** Folder of the compiled CLI entries (`fetch-files.js`, …). */
  cliDir: string;
  /** Absolute remote folder holding the data set. */
  remoteDir: string;
  /** Local folder under which each run gets a fresh folder. */
  localRoot: string;
  prereqs: Prerequisites;
}

export interface FetchTools {
  tools: BenchTool[];
  skipped: { tool: string; reason: string }[];
}

/** ssh client options shared by the OpenSSH peers: our key, our known_hosts, no user config. */
function sshOptions(sshd: SshdFixture): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    sshd.clientKeyPath,
    '-o',
    `UserKnownHostsFile=${sshd.knownHostsPath}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
  ];
}

export function fetchTools(input: FetchToolsInput): FetchTools {
  const { sshd, remoteDir, localRoot, prereqs } = input;
  const target = `${sshd.username}@${sshd.host}`;
  const tools: BenchTool[] = [oursFetchTool(input)];
  const skipped: { tool: string; reason: string }[] = [];

  if (prereqs.has('sftp')) {
    tools.push({
      name: 'sftp',
      display: 'sftp -b (get -r)',
      async prepare(runLabel) {
        const runDir = join(localRoot, `sftp-${runLabel}`);
        await mkdir(runDir, { recursive: true });
        const outputDir = join(runDir, 'out');
        const batchPath = join(runDir, 'batch');
        await writeFile(batchPath, `get -r "${remoteDir}" "${outputDir}"\n`);
        return {
          command: prereqs.pathOf('sftp'),
          args: ['-q', ...sshOptions(sshd), '-P', String(sshd.port), '-b', batchPath, target],
          outputDirs: [outputDir],
          warmDir: remoteDir,
        };
      },
    });
  } else skipped.push({ tool: 'sftp', reason: 'sftp is not installed (openssh-client)' });

  if (prereqs.has('rsync') && prereqs.has('ssh')) {
    const shell = [prereqs.pathOf('ssh'), ...sshOptions(sshd), '-p', String(sshd.port)].join(' ');
    tools.push({
      name: 'rsync',
      display: 'rsync -a (over ssh)',
      async prepare(runLabel) {
        const outputDir = join(localRoot, `rsync-${runLabel}`, 'out');
        await mkdir(outputDir, { recursive: true });
        return {
          command: prereqs.pathOf('rsync'),
          args: ['-a', '-e', shell, `${target}:${remoteDir}/`, `${outputDir}/`],
          outputDirs: [outputDir],
          warmDir: remoteDir,
        };
      },
    });
  } else skipped.push({ tool: 'rsync', reason: 'rsync or ssh is not installed' });

  if (prereqs.has('rclone')) {
    // An on-the-fly remote: nothing read from or written to a config file.
    const remote = [
      ':sftp',
      `host=${sshd.host}`,
      `port=${sshd.port}`,
      `user=${sshd.username}`,
      `key_file=${sshd.clientKeyPath}`,
      `known_hosts_file=${sshd.knownHostsPath}`,
    ].join(',');
    tools.push({
      name: 'rclone',
      display: 'rclone copy --transfers 16',
      async prepare(runLabel) {
        const outputDir = join(localRoot, `rclone-${runLabel}`, 'out');
        await mkdir(outputDir, { recursive: true });
        return {
          command: prereqs.pathOf('rclone'),
          args: [
            'copy',
            `${remote}:${remoteDir}`,
            outputDir,
            '--transfers',
            '16',
            // Otherwise rclone runs `md5sum` over a new ssh session after every file: ~80 ms each here.
            '--sftp-disable-hashcheck',
            '--config',
            '/dev/null',
          ],
          outputDirs: [outputDir],
          warmDir: remoteDir,
        };
      },
    });
  } else skipped.push({ tool: 'rclone', reason: 'rclone is not installed' });

  return { tools, skipped };
}

/** Our CLI as a user runs it, from a config written fresh for each run (new state, new incoming). */
export function oursFetchTool(input: FetchToolsInput): BenchTool {
  const { sshd, remoteDir, localRoot, cliDir } = input;
  return {
    name: OURS_FETCH,
    display: 'fetch-files --stop-on-loop 1',
    async prepare(runLabel) {
      const runDir = join(localRoot, `ours-${runLabel}`);
      await mkdir(runDir, { recursive: true });
      const configPath = join(runDir, 'fetcher.yml');
      await writeFile(configPath, dump(fetcherConfig(sshd, runDir, remoteDir)));
      return {
        command: process.execPath,
        args: [join(cliDir, 'fetch-files.js'), '--config', configPath, '--stop-on-loop', '1'],
        outputDirs: [join(runDir, 'incoming', 'bench')],
        warmDir: remoteDir,
      };
    },
  };
}

/** The shipped defaults (concurrency, connections, chunk sizes), only the server and folders set. */
export function fetcherConfig(sshd: SshdFixture, runDir: string, remoteDir: string): Record<string, unknown> {
  return {
    incoming: join(runDir, 'incoming'),
    state_dir: join(runDir, 'state'),
    log_dir: join(runDir, 'log'),
    sources: [
      {
        name: 'bench',
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        private_key: sshd.clientKeyPath,
        known_hosts: sshd.knownHostsPath,
        remote_dir: remoteDir,
        recursive: true,
      },
    ],
  };
}
