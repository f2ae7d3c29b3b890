import { type Logger, pino } from 'pino';

export interface CapturedLog {
  readonly log: Logger;
  /** Every line so far, parsed from pino's JSON. */
  lines(): Record<string, unknown>[];
  /** Lines at `warn` (pino level 40) and above. */
  warnings(): Record<string, unknown>[];
}

/** A logger that keeps its lines as parsed JSON objects, so tests assert on fields, not on text. */
export function captureLogger(level: pino.LevelWithSilent = 'debug'): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return {
    log,
    lines: () => [...lines],
    warnings: () => lines.filter((line) => typeof line.level === 'number' && line.level >= 40),
  };
}
