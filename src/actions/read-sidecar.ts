import { SyncError } from '../errors/index.js';
import type { Storage } from '../storage/storage.js';

const MAX_SIDECAR_BYTES = 4096;

/**
 * The sha256 a partner published beside a file (`report.csv.sha256`), in the format
 * `sha256sum` writes: 64 hex digits, optionally followed by the file name.
 */
export async function readSidecarSha256(
  remote: Storage,
  sidecarPath: string,
  signal?: AbortSignal,
): Promise<string> {
  const stream = await remote.openRead(sidecarPath, signal ? { signal } : {});
  const chunks: Buffer[] = [];
  let sizeBytes = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    sizeBytes += (chunk as Buffer).length;
    if (sizeBytes > MAX_SIDECAR_BYTES) {
      stream.destroy();
      break;
    }
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  const match = /^([0-9a-fA-F]{64})\b/.exec(text);
  if (!match?.[1]) {
    throw new SyncError('E_VERIFY', `${sidecarPath} does not start with a sha256 (64 hex digits)`, {
      op: 'read sidecar',
      path: sidecarPath,
      host: remote.label,
      hint: 'the sidecar should be what `sha256sum FILE` prints',
    });
  }
  return match[1].toLowerCase();
}
