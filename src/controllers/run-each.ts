/**
 * Runs `work` on every item, at most `workers` at a time, taking the items in order.
 * Memory grows with `workers`, not with the items: one waiting async call per item
 * (`Promise.all(items.map(...))`) cost about 4 KiB each, 580 MiB for a pass of
 * 100,000 files (scripts/bench, scale section). `work` is expected to catch what
 * concerns one item only; if it throws anyway, no further item is started, and the
 * first error is thrown once the items already started have ended, so no work
 * outlives the call (Promise.all would reject while the rest ran on).
 */
export async function runEach<T>(
  items: readonly T[],
  workers: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next] as T;
      next += 1;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(workers, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
}
