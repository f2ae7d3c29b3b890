/**
 * What the bench needs from the machine, found or not. Nothing is installed here:
 * what is missing is named with its Debian package and the exact command to run;
 * a missing peer tool only drops that tool's rows.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export type ToolId = 'sshd' | 'sftp' | 'ssh' | 'ssh-keygen' | 'rsync' | 'rclone' | 'time';

interface ToolSpec {
  id: ToolId;
  /** Name looked up on PATH, or an absolute path. */
  executable: string;
  debianPackage: string;
  /** What is lost without it. */
  without: string;
}

const TOOLS: readonly ToolSpec[] = [
  {
    id: 'sshd',
    executable: '/usr/sbin/sshd',
    debianPackage: 'openssh-server',
    without: 'the fetch and scale sections (no SFTP server to fetch from)',
  },
  {
    id: 'ssh-keygen',
    executable: 'ssh-keygen',
    debianPackage: 'openssh-client',
    without: 'the fetch and scale sections (no keys for the server)',
  },
  { id: 'sftp', executable: 'sftp', debianPackage: 'openssh-client', without: 'the OpenSSH sftp rows' },
  { id: 'ssh', executable: 'ssh', debianPackage: 'openssh-client', without: 'the rsync-over-ssh rows' },
  { id: 'rsync', executable: 'rsync', debianPackage: 'rsync', without: 'the rsync rows' },
  { id: 'rclone', executable: 'rclone', debianPackage: 'rclone', without: 'the rclone rows' },
  { id: 'time', executable: '/usr/bin/time', debianPackage: 'time', without: 'the peak RSS column' },
];

export interface Prerequisites {
  has(id: ToolId): boolean;
  /** Absolute path of a found tool. */
  pathOf(id: ToolId): string;
  /** One line per missing tool, and the install command; empty when nothing is missing. */
  report(): string[];
}

export function checkPrerequisites(env: NodeJS.ProcessEnv = process.env): Prerequisites {
  const found = new Map<ToolId, string>();
  for (const tool of TOOLS) {
    const path = findExecutable(tool.executable, env.PATH ?? '');
    if (path !== undefined) found.set(tool.id, path);
  }
  const missing = TOOLS.filter((tool) => !found.has(tool.id));
  return {
    has: (id) => found.has(id),
    pathOf: (id) => {
      const path = found.get(id);
      if (path === undefined) throw new Error(`${id} is not installed`);
      return path;
    },
    report: () => {
      if (missing.length === 0) return [];
      const packages = [...new Set(missing.map((tool) => tool.debianPackage))];
      return [
        ...missing.map(
          (tool) =>
            `missing: ${tool.executable} (Debian package ${tool.debianPackage}); skipped: ${tool.without}`,
        ),
        `to measure everything, run as root: apt-get install -y ${packages.join(' ')}`,
      ];
    },
  };
}

function findExecutable(executable: string, pathList: string): string | undefined {
  const candidates = isAbsolute(executable)
    ? [executable]
    : pathList
        .split(delimiter)
        .filter((dir) => dir !== '')
        .map((dir) => join(dir, executable));
  return candidates.find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
