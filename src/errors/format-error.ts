import { SyncError } from './sync-error.js';

/**
 * One line for a person: the message (which already says what and where), then the
 * code, then what to do. Never a stack trace.
 */
export function formatErrorLine(err: unknown): string {
  if (!(err instanceof SyncError)) {
    const message = err instanceof Error ? err.message : String(err);
    return `E_INTERNAL: ${firstLine(message)}`;
  }
  const hint = typeof err.context.hint === 'string' && err.context.hint ? ` — ${err.context.hint}` : '';
  return `${err.code}: ${firstLine(err.message)}${hint}`;
}

function firstLine(text: string): string {
  const newline = text.indexOf('\n');
  return newline === -1 ? text : text.slice(0, newline);
}
