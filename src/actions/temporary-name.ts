import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { truncateUtf8 } from './truncate-utf8.js';

/** Room left for the random part and `.part` within a 255-byte file name. */
const MAX_TEMP_STEM_BYTES = 200;

/**
 * `dir/report.csv` → `dir/.report.csv.1a2b3c4d.part`: a temporary name in the same
 * folder (so the final rename is atomic), hidden, and recognisable by every pass. A
 * long name is shortened so the temporary stays within 255 bytes.
 */
export function temporaryPathFor(targetPath: string): string {
  const dir = posix.dirname(targetPath);
  const name = posix.basename(targetPath);
  return posix.join(
    dir,
    `.${truncateUtf8(name, MAX_TEMP_STEM_BYTES)}.${randomBytes(4).toString('hex')}.part`,
  );
}

/** True for names this tool uses as temporaries: never picked up as files, cleaned after a crash. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.part');
}
