/** libpg-query's JSON tree: `{ NodeType: { field: ... } }`, arrays, and scalars. */
export type AstValue = string | number | boolean | null | AstNode | AstValue[];
export interface AstNode {
  [key: string]: AstValue | undefined;
}

export function isNode(value: unknown): value is AstNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The single key of a wrapped node: `{ CreateStmt: {...} }` → `CreateStmt`. */
export function nodeType(node: AstNode): string {
  return Object.keys(node)[0] ?? '';
}

export function unwrap(node: AstNode): AstNode {
  const inner = node[nodeType(node)];
  return isNode(inner) ? inner : {};
}

/** Visits every object in the tree, depth first, parents before children. */
export function walk(value: AstValue | undefined, visit: (node: AstNode, key: string) => void, key = ''): void {
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    for (const item of value) walk(item, visit, key);
    return;
  }
  visit(value, key);
  // for…in rather than Object.entries: a data migration's tree has millions of nodes.
  for (const childKey in value) {
    const child = value[childKey];
    if (typeof child === 'object' && child !== null) walk(child, visit, childKey);
  }
}

/** `[{String:{sval:'public'}},{String:{sval:'t'}}]` → `['public','t']`, or undefined if not a name list. */
export function nameList(value: AstValue | undefined): string[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const names: string[] = [];
  for (const item of value) {
    if (!isNode(item) || !isNode(item.String)) return undefined;
    const sval = item.String.sval;
    if (typeof sval !== 'string') return undefined;
    names.push(sval);
  }
  return names;
}

export function stringField(node: AstNode, key: string): string | undefined {
  const value = node[key];
  return typeof value === 'string' ? value : undefined;
}
