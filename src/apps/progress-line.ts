import type { FileProgress, TransferProgress } from '../controllers/transfer-progress.js';
import { formatDuration, formatSize } from '../config/index.js';

export interface ProgressLine extends TransferProgress {
  close(): void;
}

/** Files at least this big get a bar of their own. */
const BAR_THRESHOLD_BYTES = 32 * 1024 * 1024;
const REDRAW_MS = 200;
const BAR_WIDTH = 20;

/**
 * A live status line for a terminal: files done/started, bytes, rate, ETA, and a bar
 * for the biggest file in flight. Drawn on stderr with carriage returns; only ever
 * created when the output is a terminal, so logs and pipes never see it.
 */
export function createProgressLine(stream: NodeJS.WriteStream): ProgressLine {
  const startedMs = Date.now();
  let filesStarted = 0;
  let filesDone = 0;
  let bytesTotal = 0;
  let bytesDone = 0;
  const big = new Map<string, { sizeBytes: number; doneBytes: number }>();
  let lastDrawMs = 0;
  let drawn = false;

  const draw = (force = false): void => {
    const nowMs = Date.now();
    if (!force && nowMs - lastDrawMs < REDRAW_MS) return;
    lastDrawMs = nowMs;
    const seconds = (nowMs - startedMs) / 1000;
    const rate = seconds > 0 ? bytesDone / seconds : 0;
    const eta =
      rate > 0 && bytesTotal > bytesDone
        ? ` ETA ${formatDuration(((bytesTotal - bytesDone) / rate) * 1000)}`
        : '';
    let bar = '';
    const biggest = [...big.entries()].sort((a, b) => b[1].sizeBytes - a[1].sizeBytes)[0];
    if (biggest) {
      const [label, file] = biggest;
      const filled = Math.round((file.doneBytes / file.sizeBytes) * BAR_WIDTH);
      bar = ` [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${label.slice(-30)}`;
    }
    const text = `${filesDone}/${filesStarted} files, ${formatSize(bytesDone)}/${formatSize(bytesTotal)}, ${formatSize(rate)}/s${eta}${bar}`;
    stream.write(`\r\u001b[2K${text}`);
    drawn = true;
  };

  return {
    fileStarted(label: string, sizeBytes: number): FileProgress {
      filesStarted += 1;
      bytesTotal += sizeBytes;
      let seenBytes = 0;
      if (sizeBytes >= BAR_THRESHOLD_BYTES) big.set(label, { sizeBytes, doneBytes: 0 });
      draw();
      return {
        update(doneBytes: number) {
          bytesDone += doneBytes - seenBytes;
          seenBytes = doneBytes;
          const entry = big.get(label);
          if (entry) entry.doneBytes = doneBytes;
          draw();
        },
        done(ok: boolean) {
          if (ok) {
            bytesDone += sizeBytes - seenBytes;
            filesDone += 1;
          } else {
            bytesTotal -= sizeBytes;
            bytesDone -= seenBytes;
          }
          big.delete(label);
          draw();
        },
      };
    },
    close() {
      if (drawn) stream.write('\r\u001b[2K');
    },
  };
}
