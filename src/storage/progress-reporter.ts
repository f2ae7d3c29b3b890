/** Reports transfer progress at most every `intervalMs`, plus once at the very start and end. */
export interface ProgressReporter {
  add(bytes: number): void;
  /** Reports the final count unless it was the last one reported. */
  finish(): void;
  readonly bytesDone: number;
}

export const PROGRESS_INTERVAL_MS = 250;

export function createProgressReporter(
  onProgress: ((bytesDone: number, sizeBytes: number) => void) | undefined,
  sizeBytes: number,
  intervalMs = PROGRESS_INTERVAL_MS,
): ProgressReporter {
  let bytesDone = 0;
  let reportedBytes = -1;
  let lastReportAt = 0;
  function report(): void {
    if (!onProgress || reportedBytes === bytesDone) return;
    reportedBytes = bytesDone;
    lastReportAt = Date.now();
    onProgress(bytesDone, sizeBytes);
  }
  return {
    add(bytes: number): void {
      bytesDone += bytes;
      // The first bytes are reported at once so a caller sees the transfer has started.
      if (reportedBytes <= 0 || Date.now() - lastReportAt >= intervalMs) report();
    },
    finish: report,
    get bytesDone() {
      return bytesDone;
    },
  };
}
