const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/gy;

/**
 * `500ms`, `30s`, `5m`, `2h`, `1d`, or a sum such as `1m30s`, to milliseconds. A bare
 * number is refused (is `60` seconds or milliseconds?) except 0. Returns undefined
 * when the text is not a duration.
 */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return text === 0 ? 0 : undefined;
  const compact = text.trim();
  if (compact === '0') return 0;
  if (compact === '') return undefined;
  DURATION_PART.lastIndex = 0;
  let totalMs = 0;
  let consumed = 0;
  for (let match = DURATION_PART.exec(compact); match; match = DURATION_PART.exec(compact)) {
    totalMs += Number(match[1]) * (DURATION_UNITS_MS[match[2] as string] ?? Number.NaN);
    consumed = DURATION_PART.lastIndex;
    while (compact[consumed] === ' ') consumed += 1;
    DURATION_PART.lastIndex = consumed;
  }
  if (consumed !== compact.length || !Number.isFinite(totalMs)) return undefined;
  return Math.round(totalMs);
}

/** `90000` → `1m30s`, for messages and summaries. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(1))}s`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1_000);
  for (const [unit, seconds] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= seconds) {
      parts.push(`${Math.floor(rest / seconds)}${unit}`);
      rest %= seconds;
    }
  }
  return parts.join('');
}
