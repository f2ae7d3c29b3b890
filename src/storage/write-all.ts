import type { FileHandle } from 'node:fs/promises';

/** Writes every byte of `buffers` at `position`, going on after a partial write (rare, but allowed by POSIX). */
export async function writeAllAt(fileHandle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  let offset = position;
  while (pending.length > 0) {
    const { bytesWritten } = await fileHandle.writev(pending, offset);
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    offset += bytesWritten;
    pending = dropBytes(pending, bytesWritten);
  }
}

function dropBytes(buffers: Buffer[], count: number): Buffer[] {
  let left = count;
  let index = 0;
  while (index < buffers.length && left >= (buffers[index]?.length ?? 0)) {
    left -= buffers[index]?.length ?? 0;
    index += 1;
  }
  const rest = buffers.slice(index);
  const first = rest[0];
  if (first && left > 0) rest[0] = first.subarray(left);
  return rest;
}
