/**
 * Runs `work` on every item, at most `workers` at a time, taking the items in order.
 * Memory grows with `workers`, not with the items: one waiting async call per item
 * (`Promise.all(items.map(...))`) cost about 4 KiB each, 580 MiB for a pass of
 * 100,000 files (scripts/bench, scale section). A `work` that rejects stops its
 * worker and rejects the whole, as Promise.all would; `work` is expected to catch
 * what concerns one item only.
 */
export async function runEach<T>(
  items: readonly T[],
  workers: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(workers, items.length)) }, worker));
}
