/**
 * An in-memory Storage for controller unit tests: a tree of files, folders and links
 * with POSIX-like rename semantics, and a hook to inject a failure into any operation.
 * `download` writes a real local file (controllers sync and rename it on disk).
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { SyncError } from '../../src/errors/index.js';
import type {
  ListOptions,
  OpenReadOptions,
  Storage,
  StorageEntry,
  StorageStat,
  TransferOptions,
  TransferResult,
} from '../../src/storage/storage.js';

interface MemoryNode {
  type: 'file' | 'dir' | 'link';
  data: Buffer;
  mtimeMs: number;
  mode: number;
  linkTarget?: string;
}

export type MemoryOp =
  | 'list'
  | 'stat'
  | 'openRead'
  | 'download'
  | 'upload'
  | 'rename'
  | 'remove'
  | 'mkdirp'
  | 'setTimes';

export class MemoryStorage implements Storage {
  readonly kind = 'sftp' as const;
  readonly label = 'memory://test';
  readonly nodes = new Map<string, MemoryNode>([
    ['/', { type: 'dir', data: Buffer.alloc(0), mtimeMs: 0, mode: 0o40755 }],
  ]);
  /** Called before every operation; throw from it to inject a fault. */
  beforeOp: (op: MemoryOp, path: string) => void = () => undefined;
  readonly calls: { op: MemoryOp; path: string }[] = [];
  freeBytes: number | null = null;

  addFile(path: string, content: string | Buffer, mtimeMs = Date.now() - 3_600_000): void {
    this.ensureParents(path);
    this.nodes.set(norm(path), { type: 'file', data: Buffer.from(content), mtimeMs, mode: 0o100644 });
  }

  addLink(path: string, target: string): void {
    this.ensureParents(path);
    this.nodes.set(norm(path), {
      type: 'link',
      data: Buffer.alloc(0),
      mtimeMs: Date.now(),
      mode: 0o120777,
      linkTarget: target,
    });
  }

  has(path: string): boolean {
    return this.nodes.has(norm(path));
  }

  content(path: string): string | undefined {
    return this.nodes.get(norm(path))?.data.toString();
  }

  async *list(dirPath: string, options: ListOptions = {}): AsyncIterable<StorageEntry> {
    this.hook('list', dirPath);
    const root = norm(dirPath);
    if (this.nodes.get(root)?.type !== 'dir') throw notFound('list', dirPath);
    const walk = function* (this: MemoryStorage, dir: string): Generator<StorageEntry> {
      const children = [...this.nodes.keys()]
        .filter((path) => path !== dir && posix.dirname(path) === dir)
        .sort();
      for (const path of children) {
        const node = this.nodes.get(path) as MemoryNode;
        const relPath = posix.relative(root, path);
        yield {
          name: posix.basename(path),
          relPath,
          type: node.type,
          sizeBytes: node.data.length,
          mtimeMs: node.mtimeMs,
          mode: node.mode,
          ...(node.linkTarget !== undefined ? { linkTarget: node.linkTarget } : {}),
        };
        if (node.type === 'dir' && options.recursive && !options.skipDir?.(relPath))
          yield* walk.call(this, path);
      }
    };
    yield* walk.call(this, root);
  }

  async stat(path: string, options: { followLinks?: boolean } = {}): Promise<StorageStat> {
    this.hook('stat', path);
    const node = this.resolve(path, options.followLinks !== false, 'stat');
    return { type: node.type, sizeBytes: node.data.length, mtimeMs: node.mtimeMs, mode: node.mode };
  }

  async readLink(path: string): Promise<string> {
    const node = this.nodes.get(norm(path));
    if (node?.type !== 'link' || node.linkTarget === undefined) throw notFound('readlink', path);
    return node.linkTarget;
  }

  async realPath(path: string): Promise<string> {
    let current = norm(path);
    for (let hops = 0; hops < 40; hops += 1) {
      const node = this.nodes.get(current);
      if (!node) throw notFound('realpath', path);
      if (node.type !== 'link') return current;
      current = norm(posix.resolve(posix.dirname(current), node.linkTarget ?? ''));
    }
    throw new SyncError('E_NOT_FOUND', `too many links at ${path}`, { op: 'realpath', path });
  }

  async openRead(path: string, options: OpenReadOptions = {}): Promise<Readable> {
    this.hook('openRead', path);
    const node = this.resolve(path, true, 'open');
    return Readable.from([node.data.subarray(options.startOffset ?? 0)]);
  }

  async download(srcPath: string, localPath: string, options: TransferOptions = {}): Promise<TransferResult> {
    this.hook('download', srcPath);
    const startedMs = Date.now();
    const node = this.resolve(srcPath, true, 'download');
    await writeFile(localPath, node.data, options.fileMode !== undefined ? { mode: options.fileMode } : {});
    options.onProgress?.(node.data.length, node.data.length);
    return { sizeBytes: node.data.length, sha256: sha256(node.data), durationMs: Date.now() - startedMs };
  }

  async upload(localPath: string, dstPath: string): Promise<TransferResult> {
    this.hook('upload', dstPath);
    const startedMs = Date.now();
    const data = await readFile(localPath);
    this.requireParent(dstPath, 'upload');
    this.nodes.set(norm(dstPath), { type: 'file', data, mtimeMs: Date.now(), mode: 0o100644 });
    return { sizeBytes: data.length, sha256: sha256(data), durationMs: Date.now() - startedMs };
  }

  async rename(fromPath: string, toPath: string, options: { overwrite: boolean }): Promise<void> {
    this.hook('rename', fromPath);
    const node = this.nodes.get(norm(fromPath));
    if (!node) throw notFound('rename', fromPath);
    this.requireParent(toPath, 'rename');
    if (this.nodes.has(norm(toPath)) && !options.overwrite) {
      throw new SyncError('E_EXISTS', `${toPath} already exists`, {
        op: 'rename',
        path: fromPath,
        dstPath: toPath,
      });
    }
    this.nodes.delete(norm(fromPath));
    this.nodes.set(norm(toPath), node);
  }

  async remove(path: string): Promise<void> {
    this.hook('remove', path);
    if (!this.nodes.delete(norm(path))) throw notFound('remove', path);
  }

  async removeDir(path: string): Promise<void> {
    const key = norm(path);
    if ([...this.nodes.keys()].some((other) => posix.dirname(other) === key && other !== key)) {
      throw new SyncError('E_EXISTS', `${path} is not empty`, { op: 'rmdir', path });
    }
    if (!this.nodes.delete(key)) throw notFound('rmdir', path);
  }

  async mkdirp(path: string): Promise<void> {
    this.hook('mkdirp', path);
    this.ensureParents(posix.join(path, 'x'));
  }

  async setTimes(path: string, mtimeMs: number): Promise<void> {
    this.hook('setTimes', path);
    this.resolve(path, true, 'utimes').mtimeMs = mtimeMs;
  }

  async setMode(path: string, mode: number): Promise<void> {
    const node = this.resolve(path, true, 'chmod');
    node.mode = (node.mode & ~0o7777) | mode;
  }

  async freeSpace(): Promise<number | null> {
    return this.freeBytes;
  }

  async close(): Promise<void> {}

  private hook(op: MemoryOp, path: string): void {
    this.calls.push({ op, path });
    this.beforeOp(op, path);
  }

  private resolve(path: string, followLinks: boolean, op: string): MemoryNode {
    let key = norm(path);
    for (let hops = 0; hops < 40; hops += 1) {
      const node = this.nodes.get(key);
      if (!node) throw notFound(op, path);
      if (node.type !== 'link' || !followLinks) return node;
      key = norm(posix.resolve(posix.dirname(key), node.linkTarget ?? ''));
    }
    throw notFound(op, path);
  }

  private ensureParents(path: string): void {
    let dir = posix.dirname(norm(path));
    const missing: string[] = [];
    while (!this.nodes.has(dir)) {
      missing.push(dir);
      dir = posix.dirname(dir);
    }
    for (const folder of missing)
      this.nodes.set(folder, { type: 'dir', data: Buffer.alloc(0), mtimeMs: Date.now(), mode: 0o40755 });
  }

  private requireParent(path: string, op: string): void {
    if (this.nodes.get(posix.dirname(norm(path)))?.type !== 'dir') throw notFound(op, posix.dirname(path));
  }
}

function norm(path: string): string {
  return posix.resolve('/', path);
}

function notFound(op: string, path: string): SyncError {
  return new SyncError('E_NOT_FOUND', `no such file or folder: ${path}`, { op, path, host: 'memory://test' });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
