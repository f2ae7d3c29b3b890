/**
 * The bench's data sets: what files each holds, and how to write one into a folder
 * with its manifest (relative path → sha256). Contents are random bytes (nothing for
 * a cipher or compressor to exploit), each file different; every mtime is two hours
 * old, so no `min_age` holds a file back.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, utimesSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface FileSpec {
  relPath: string;
  sizeBytes: number;
}

export interface DataSetSpec {
  /** Short id used in folder names and JSON: `a-big`, `b-small`, `c-medium`, `scale-1000`. */
  id: string;
  /** What a table title says, e.g. "(b) 10,000 files of 4 KiB in 100 folders". */
  title: string;
  files: FileSpec[];
}

export interface Manifest {
  /** Relative path (`/`-separated) → lower-case hex sha256. */
  sha256ByPath: Map<string, string>;
  totalBytes: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;

export interface DataSetSizes {
  bigBytes: number;
  smallFiles: number;
  mediumFiles: number;
}

export const FULL_SIZES: DataSetSizes = { bigBytes: 1024 * MIB, smallFiles: 10_000, mediumFiles: 200 };
export const QUICK_SIZES: DataSetSizes = { bigBytes: 64 * MIB, smallFiles: 1_000, mediumFiles: 20 };

/** (a) one big file. */
export function bigFileSet(sizeBytes: number): DataSetSpec {
  return {
    id: 'a-big',
    title: `(a) one file of ${formatBytes(sizeBytes)}`,
    files: [{ relPath: 'big.bin', sizeBytes }],
  };
}

/** (b) many 4 KiB files, 100 per folder. */
export function smallFilesSet(fileCount: number): DataSetSpec {
  return {
    id: 'b-small',
    title: `(b) ${fileCount.toLocaleString('en-US')} files of 4 KiB in ${Math.ceil(fileCount / 100)} folders`,
    files: spreadInFolders(fileCount, 100, () => 4 * KIB),
  };
}

/** (c) files of 1–10 MiB, sizes spread evenly (a fixed pattern, so every run sees the same bytes count). */
export function mediumFilesSet(fileCount: number): DataSetSpec {
  return {
    id: 'c-medium',
    title: `(c) ${fileCount.toLocaleString('en-US')} files of 1–10 MiB`,
    files: spreadInFolders(fileCount, 50, (index) => {
      // A permutation of the sizes, so neighbours differ: 1 MiB + k/(n−1) × 9 MiB, rounded to 4 KiB.
      const k = (index * 37) % fileCount;
      const bytes = MIB + Math.round((fileCount <= 1 ? 0 : k / (fileCount - 1)) * 9 * MIB);
      return Math.round(bytes / (4 * KIB)) * 4 * KIB;
    }),
  };
}

/** Scale runs: tiny files (100–400 bytes), 100 per folder. */
export function tinyFilesSet(fileCount: number): DataSetSpec {
  return {
    id: `scale-${fileCount}`,
    title: `${fileCount.toLocaleString('en-US')} tiny files`,
    files: spreadInFolders(fileCount, 100, (index) => 100 + ((index * 7919) % 300)),
  };
}

function spreadInFolders(
  fileCount: number,
  perFolder: number,
  sizeOf: (index: number) => number,
): FileSpec[] {
  const files: FileSpec[] = [];
  for (let index = 0; index < fileCount; index += 1) {
    const folder = `d${String(Math.floor(index / perFolder)).padStart(4, '0')}`;
    files.push({ relPath: `${folder}/f${String(index).padStart(6, '0')}.dat`, sizeBytes: sizeOf(index) });
  }
  return files;
}

export function totalBytesOf(spec: DataSetSpec): number {
  return spec.files.reduce((sum, file) => sum + file.sizeBytes, 0);
}

/** Writes every file of `spec` below `rootDir` (created) and returns the manifest. */
export function writeDataSet(rootDir: string, spec: DataSetSpec): Manifest {
  const oldSeconds = Math.floor(Date.now() / 1000) - 7_200;
  const sha256ByPath = new Map<string, string>();
  const block = Buffer.allocUnsafe(4 * MIB);
  let lastFolder = '';
  let totalBytes = 0;
  for (const file of spec.files) {
    const path = join(rootDir, file.relPath);
    const folder = dirname(path);
    if (folder !== lastFolder) {
      mkdirSync(folder, { recursive: true });
      lastFolder = folder;
    }
    const hash = createHash('sha256');
    const fd = openSync(path, 'w');
    try {
      for (let written = 0; written < file.sizeBytes; ) {
        const piece = block.subarray(0, Math.min(block.length, file.sizeBytes - written));
        randomFillSync(piece);
        hash.update(piece);
        writeSync(fd, piece);
        written += piece.length;
      }
    } finally {
      closeSync(fd);
    }
    utimesSync(path, oldSeconds, oldSeconds);
    sha256ByPath.set(file.relPath, hash.digest('hex'));
    totalBytes += file.sizeBytes;
  }
  return { sha256ByPath, totalBytes };
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * MIB && bytes % (1024 * MIB) === 0) return `${bytes / (1024 * MIB)} GiB`;
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes / KIB} KiB`;
  return `${bytes} bytes`;
}
