/**
 * The signal that aborts transfers in flight: `graceMs` after a stop was asked for
 * (transfers get that long to finish), or at once on `forceSignal` (a second Ctrl-C).
 */
export function abortAfterGrace(
  stopSignal: AbortSignal,
  graceMs: number,
  forceSignal: AbortSignal,
): AbortSignal {
  const controller = new AbortController();
  const abort = (): void => controller.abort(new Error('stopped'));
  if (forceSignal.aborted) abort();
  forceSignal.addEventListener('abort', abort, { once: true });
  const startGrace = (): void => {
    const timer = setTimeout(abort, graceMs);
    timer.unref();
    controller.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  };
  if (stopSignal.aborted) startGrace();
  else stopSignal.addEventListener('abort', startGrace, { once: true });
  return controller.signal;
}
