import { Secret } from './secret.js';

/** Every secret value in a loaded config, for the logger to mask. */
export function collectSecrets(config: unknown): string[] {
  const found: string[] = [];
  const seen = new Set<unknown>();
  function visit(node: unknown): void {
    if (node instanceof Secret) {
      found.push(node.reveal());
      return;
    }
    if (node === null || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    for (const child of Object.values(node)) visit(child);
  }
  visit(config);
  return found;
}
