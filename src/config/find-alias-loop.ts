/**
 * The key path of the first node that contains itself, or undefined. YAML lets an
 * alias point at a node that encloses it (`a: &x [*x]`); js-yaml builds that as a
 * cyclic object, which every later step (env expansion, the schema, freezing) would
 * walk forever. Shared, non-looping aliases are fine and are walked once each.
 */
export function findAliasLoop(tree: unknown): PropertyKey[] | undefined {
  const done = new Set<object>();
  const enclosing = new Set<object>();
  // Explicit stack: a deep document must not overflow the call stack either.
  const stack: { node: object; path: PropertyKey[]; children?: [PropertyKey, unknown][] }[] = [];
  if (isContainer(tree)) stack.push({ node: tree, path: [] });
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (!frame) break;
    if (!frame.children) {
      enclosing.add(frame.node);
      frame.children = Array.isArray(frame.node)
        ? frame.node.map((child, index): [PropertyKey, unknown] => [index, child])
        : Object.entries(frame.node);
    }
    const next = frame.children.pop();
    if (!next) {
      stack.pop();
      enclosing.delete(frame.node);
      done.add(frame.node);
      continue;
    }
    const [key, child] = next;
    if (!isContainer(child) || done.has(child)) continue;
    if (enclosing.has(child)) return [...frame.path, key];
    stack.push({ node: child, path: [...frame.path, key] });
  }
  return undefined;
}

function isContainer(value: unknown): value is object {
  return value !== null && typeof value === 'object';
}
