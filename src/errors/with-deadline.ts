import { type ErrorContext, SyncError } from './sync-error.js';

/**
 * Races `promise` against a timer: after `timeoutMs` it rejects with E_TIMEOUT (and
 * calls `onTimeout`, e.g. to destroy the stuck connection). The timer never keeps
 * the process alive. No promise on a network path may go without one of these.
 */
export function withDeadline<T>(
  promise: Promise<T>,
  timeoutMs: number,
  context: ErrorContext,
  onTimeout?: () => void,
): Promise<T> {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return promise;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        onTimeout?.();
      } finally {
        reject(
          new SyncError(
            'E_TIMEOUT',
            `${context.op ?? 'operation'} got no answer within ${timeoutMs} ms${where(context)}`,
            {
              hint: 'the server or the network is not answering; check it, or raise operation_timeout',
              ...context,
              timeoutMs,
            },
          ),
        );
      }
    }, timeoutMs);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: Error) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function where(context: ErrorContext): string {
  const parts = [context.path, context.host ? `on ${context.host}` : undefined].filter(Boolean);
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
