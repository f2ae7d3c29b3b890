const REDACTED = '[REDACTED]';

/** Field names whose value is a secret at any depth: `password`, `sftpPassword`, `passphrase`, `private_key`, `privateKey`. */
const SECRET_FIELD = /(password|passphrase|private_?key)$/i;

/** Deeper than this a log object is cut off: a log line is not a data dump. */
const MAX_DEPTH = 12;

/**
 * A copy of a log object with the value of every secret-named field replaced by
 * `[REDACTED]`, however deep it sits (pino's own `redact` paths cannot say "at any
 * depth"). Only plain objects and arrays are copied: errors and class instances
 * are left to their serializers, and `Secret` prints itself as `[REDACTED]`.
 */
export function maskSecretFields<T>(value: T): T {
  return mask(value, 0, new WeakSet()) as T;
}

function mask(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  if (Array.isArray(value)) {
    seen.add(value);
    const out = value.map((item) => mask(item, depth + 1, seen));
    seen.delete(value);
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  seen.add(value);
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const masked = SECRET_FIELD.test(key) && child !== undefined ? REDACTED : mask(child, depth + 1, seen);
    Object.defineProperty(out, key, { value: masked, enumerable: true, writable: true, configurable: true });
  }
  seen.delete(value);
  return out;
}

/** Cheap pre-check: most lines have no secret-named field and skip the parse. */
const SECRET_FIELD_IN_JSON = /(password|passphrase|private_?key)"\s*:/i;

/**
 * The same masking on one serialised JSON log line. Working on the finished line
 * covers what no pino hook reaches on its own: child logger bindings and the
 * output of error serializers. A line that is not JSON is returned unchanged.
 */
export function maskSecretFieldsInLine(line: string): string {
  if (!SECRET_FIELD_IN_JSON.test(line)) return line;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return line;
  }
  const newline = line.endsWith('\n') ? '\n' : '';
  return JSON.stringify(maskSecretFields(parsed)) + newline;
}
