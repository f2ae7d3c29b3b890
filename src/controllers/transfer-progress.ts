/**
 * Where a pass reports bytes as they move, for a live progress line on a terminal.
 * Controllers call it; apps decide whether and how to draw it.
 */
export interface TransferProgress {
  fileStarted(label: string, sizeBytes: number): FileProgress;
}

export interface FileProgress {
  update(bytesDone: number): void;
  done(ok: boolean): void;
}
