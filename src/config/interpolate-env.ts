import { formatKeyPath } from './key-path.js';

export interface InterpolationProblem {
  keyPath: string;
  message: string;
}

// `$${` (escape) | `${NAME}` or `${NAME:-default}` | any other `${`, which is a mistake.
const PLACEHOLDER = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{/g;

/**
 * Replaces `${NAME}` (and `${NAME:-default}`) in every string value of a parsed YAML
 * tree; `$${` stands for a literal `${`. Unset (or empty) variables without a
 * default, and a `${` that is not a placeholder, are problems, reported with their
 * key paths, all at once.
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
        if (name === undefined) {
          problems.push({
            keyPath: formatKeyPath(path),
            message:
              'a "${" that is not ${NAME} or ${NAME:-default}: fix the placeholder, or write $${ for a literal ${',
          });
          return whole;
        }
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        const state = value === '' ? 'is empty' : 'is not set';
        problems.push({
          keyPath: formatKeyPath(path),
          message: `environment variable ${name} ${state} (used as \${${name}}): export it, or write \${${name}:-default}`,
        });
        return whole;
      });
    }
    if (Array.isArray(node)) return node.map((item, index) => visit(item, [...path, index]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(node)) {
        // defineProperty, not assignment: a YAML key `__proto__` must stay a key (and an unknown one).
        Object.defineProperty(out, key, {
          value: visit(value, [...path, key]),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return node;
  }

  return { value: visit(tree, []), problems };
}
