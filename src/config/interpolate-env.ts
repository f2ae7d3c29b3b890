import { formatKeyPath } from './key-path.js';

export interface InterpolationProblem {
  keyPath: string;
  message: string;
}

const PLACEHOLDER = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${NAME}` (and `${NAME:-default}`) in every string value of a parsed YAML
 * tree; `$${` stands for a literal `${`. Unset variables without a default are
 * problems, reported with their key paths, all at once.
 */
export function interpolateEnv(
  tree: unknown,
  env: Readonly<Record<string, string | undefined>>,
): { value: unknown; problems: InterpolationProblem[] } {
  const problems: InterpolationProblem[] = [];

  function visit(node: unknown, path: PropertyKey[]): unknown {
    if (typeof node === 'string') {
      return node.replace(PLACEHOLDER, (whole, name: string | undefined, fallback: string | undefined) => {
        if (whole === '$${') return '${';
        const value = env[name as string];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        problems.push({
          keyPath: formatKeyPath(path),
          message: `environment variable ${name} is not set (used as \${${name}}): export it, or write \${${name}:-default}`,
        });
        return whole;
      });
    }
    if (Array.isArray(node)) return node.map((item, index) => visit(item, [...path, index]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(node)) out[key] = visit(value, [...path, key]);
      return out;
    }
    return node;
  }

  return { value: visit(tree, []), problems };
}
