/** What the figures were measured on: cores, memory, kernel, file system, tool versions. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import type { Prerequisites } from './prerequisites.js';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  /** File system type of the bench's work folder, e.g. `ext4`. */
  fileSystem: string;
  node: string;
  tools: Record<string, string>;
}

export function describeMachine(workDir: string, prereqs: Prerequisites): MachineInfo {
  const tools: Record<string, string> = {};
  const version = (id: Parameters<Prerequisites['has']>[0], args: string[], fromStderr = false): void => {
    if (!prereqs.has(id)) return;
    const result = spawnSync(prereqs.pathOf(id), args, { encoding: 'utf8' });
    tools[id] = ((fromStderr ? result.stderr : result.stdout) ?? '').split('\n')[0]?.trim() ?? '';
  };
  version('ssh', ['-V'], true);
  version('rsync', ['--version']);
  version('rclone', ['version']);
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    fileSystem: fileSystemOf(workDir),
    node: process.version,
    tools,
  };
}

export function formatMachine(info: MachineInfo): string {
  const tools = Object.values(info.tools).join('; ');
  return `${info.cores} cores (${info.cpuModel}), ${info.memoryGiB} GiB, Linux ${info.kernel}, ${info.fileSystem}, node ${info.node}; ${tools}`;
}

/** The longest mount point of /proc/mounts that holds `path`. */
function fileSystemOf(path: string): string {
  try {
    let best = { mount: '', type: 'unknown', options: '' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type, options] = line.split(' ');
      if (mount === undefined || type === undefined) continue;
      const inside = path === mount || path.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
      if (inside && mount.length >= best.mount.length) best = { mount, type, options: options ?? '' };
    }
    return `${best.type} on ${best.mount}`;
  } catch {
    return 'unknown';
  }
}
