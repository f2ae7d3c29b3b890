const REDACTED = '[REDACTED]';

/**
 * PEM or OpenSSH private key blocks, raw or as they appear JSON-escaped on one line;
 * a block cut short (no END line, e.g. a truncated message) is masked to the end of
 * its JSON string.
 */
const PRIVATE_KEY_BLOCK =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|(?:[^"\\]|\\.)*)/g;

/** Secrets shorter than this are not searched for: masking every "ab" would wreck the logs. */
const MIN_SECRET_LENGTH = 3;

/**
 * Masks private key material and every given secret value in one serialised log
 * line. Values are searched both as written and as JSON escapes them, since the
 * line is JSON.
 */
export function redactSecrets(line: string, secrets: readonly string[]): string {
  let out = line.includes('PRIVATE KEY-----') ? line.replace(PRIVATE_KEY_BLOCK, REDACTED) : line;
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_LENGTH) continue;
    out = out.replaceAll(secret, REDACTED);
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret) out = out.replaceAll(escaped, REDACTED);
  }
  return out;
}
