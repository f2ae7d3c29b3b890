/**
 * Fires `onIdle` when requests are outstanding and none has completed for
 * `timeoutMs`. A transfer may take hours, so it gets no total deadline; a peer that
 * stops answering is caught by this instead. One coarse timer per transfer, not one
 * per request, keeps it cheap at thousands of requests a second.
 */
export interface IdleWatchdog {
  /** A request went out. */
  started(): void;
  /** A request completed. */
  completed(): void;
  stop(): void;
}

export function startIdleWatchdog(timeoutMs: number, onIdle: () => void): IdleWatchdog {
  let outstanding = 0;
  let lastProgressAt = Date.now();
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(timeoutMs) && timeoutMs > 0) {
    timer = setInterval(
      () => {
        if (outstanding > 0 && Date.now() - lastProgressAt >= timeoutMs) {
          clearInterval(timer);
          timer = undefined;
          onIdle();
        }
      },
      Math.max(10, Math.min(1_000, Math.floor(timeoutMs / 4))),
    );
    timer.unref();
  }
  return {
    started() {
      // The clock starts when there is something to wait for, not when the last reply came.
      if (outstanding === 0) lastProgressAt = Date.now();
      outstanding += 1;
    },
    completed() {
      outstanding = Math.max(0, outstanding - 1);
      lastProgressAt = Date.now();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
