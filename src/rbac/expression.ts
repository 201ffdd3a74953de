/**
 * `app_labels_expression`: the common cases of Teleport's predicate language
 * (docs/rbac.md, "app_labels_expression"):
 *
 *   labels["env"] == "dev" && (labels.team == "a" || !(labels["tier"] == "0"))
 *   contains(user.spec.traits["teams"], labels["team"])
 *   hasPrefix(labels["region"], "eu-")
 *
 * Values are strings, lists of strings (traits) and booleans. A label the
 * server lacks reads as "" (as in Teleport); a trait the identity lacks as [].
 * The role keeps the expression as text (roles stay plain data); it is parsed
 * once at load (a syntax error is a configuration error) and the parse is
 * cached by text.
 */

export class ExpressionError extends Error {}

type Node =
  | { k: 'str'; v: string }
  | { k: 'label'; key: string }
  | { k: 'trait'; key: string }
  | { k: 'not'; a: Node }
  | { k: 'and' | 'or' | 'eq' | 'ne'; a: Node; b: Node }
  | { k: 'call'; fn: 'contains' | 'hasPrefix' | 'hasSuffix' | 'equals'; args: Node[] };

type Value = string | readonly string[] | boolean;

const FUNCTIONS = { contains: 2, hasPrefix: 2, hasSuffix: 2, equals: 2 } as const;

const TOKEN = /\s*(?:(&&|\|\||==|!=|[!()[\],.])|"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_-]*))/y;

function tokenize(text: string): Array<{ op?: string; str?: string; id?: string; at: number }> {
  const out: Array<{ op?: string; str?: string; id?: string; at: number }> = [];
  TOKEN.lastIndex = 0;
  let pos = 0;
  while (pos < text.length) {
    if (/^\s*$/.test(text.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(text);
    if (!m)
      throw new ExpressionError(
        `unexpected character at column ${pos + 1}: ${JSON.stringify(text.slice(pos, pos + 10))}`,
      );
    const at = pos;
    pos = TOKEN.lastIndex;
    if (m[1] !== undefined) out.push({ op: m[1], at });
    else if (m[2] !== undefined) out.push({ str: JSON.parse(`"${m[2]}"`) as string, at });
    else out.push({ id: m[3]!, at });
  }
  return out;
}

const cache = new Map<string, Node>();

/** Parse (cached); throws ExpressionError with a column. */
export function parseExpression(text: string): void {
  compile(text);
}

function compile(text: string): Node {
  const hit = cache.get(text);
  if (hit) return hit;
  if (text.length > 4096) throw new ExpressionError('the expression is longer than 4096 characters');
  const toks = tokenize(text);
  let i = 0;
  const peek = (op: string) => toks[i]?.op === op;
  const expect = (op: string) => {
    if (!peek(op))
      throw new ExpressionError(`expected "${op}" ${toks[i] ? `at column ${toks[i]!.at + 1}` : 'at the end'}`);
    i++;
  };
  let depth = 0;
  const orExpr = (): Node => {
    if (++depth > 64) throw new ExpressionError('the expression nests too deeply');
    let a = andExpr();
    while (peek('||')) {
      i++;
      a = { k: 'or', a, b: andExpr() };
    }
    depth--;
    return a;
  };
  const andExpr = (): Node => {
    let a = unary();
    while (peek('&&')) {
      i++;
      a = { k: 'and', a, b: unary() };
    }
    return a;
  };
  const unary = (): Node => {
    if (peek('!')) {
      i++;
      return { k: 'not', a: unary() };
    }
    const a = value();
    if (peek('==') || peek('!=')) {
      const k = toks[i++]!.op === '==' ? 'eq' : 'ne';
      return { k, a, b: value() };
    }
    return a;
  };
  const key = (): string => {
    if (peek('[')) {
      i++;
      const t = toks[i++];
      if (t?.str === undefined) throw new ExpressionError('expected a quoted key inside [ ]');
      expect(']');
      return t.str;
    }
    expect('.');
    const t = toks[i++];
    if (t?.id === undefined) throw new ExpressionError('expected a name after "."');
    return t.id;
  };
  const value = (): Node => {
    const t = toks[i];
    if (!t) throw new ExpressionError('the expression ends too early');
    if (t.op === '(') {
      i++;
      const e = orExpr();
      expect(')');
      return e;
    }
    if (t.str !== undefined) {
      i++;
      return { k: 'str', v: t.str };
    }
    if (t.id === 'labels') {
      i++;
      return { k: 'label', key: key() };
    }
    if (t.id === 'user') {
      i++;
      for (const part of ['spec', 'traits']) {
        expect('.');
        if (toks[i++]?.id !== part) throw new ExpressionError(`expected user.spec.traits`);
      }
      return { k: 'trait', key: key() };
    }
    if (t.id !== undefined && Object.hasOwn(FUNCTIONS, t.id)) {
      i++;
      const fn = t.id as keyof typeof FUNCTIONS;
      expect('(');
      const args = [orExpr()];
      while (peek(',')) {
        i++;
        args.push(orExpr());
      }
      expect(')');
      if (args.length !== FUNCTIONS[fn]) throw new ExpressionError(`${fn} takes ${FUNCTIONS[fn]} arguments`);
      return { k: 'call', fn, args };
    }
    throw new ExpressionError(
      `unexpected ${t.op ?? t.id ?? 'token'} at column ${t.at + 1} (mcp-access reads labels[…], user.spec.traits[…], "strings", ==, !=, &&, ||, !, contains, hasPrefix, hasSuffix, equals)`,
    );
  };
  const node = orExpr();
  if (i !== toks.length) throw new ExpressionError(`unexpected text at column ${toks[i]!.at + 1}`);
  if (cache.size > 1024) cache.clear();
  cache.set(text, node);
  return node;
}

/** Evaluate; throws ExpressionError when the result is not a boolean or a value has the wrong type. */
export function evaluateExpression(
  text: string,
  labels: Readonly<Record<string, string>>,
  traits: Readonly<Record<string, readonly string[]>>,
): boolean {
  const v = evaluate(compile(text), labels, traits);
  if (typeof v !== 'boolean') throw new ExpressionError('the expression does not evaluate to true or false');
  return v;
}

function evaluate(
  n: Node,
  labels: Readonly<Record<string, string>>,
  traits: Readonly<Record<string, readonly string[]>>,
): Value {
  const ev = (x: Node) => evaluate(x, labels, traits);
  const bool = (x: Node): boolean => {
    const v = ev(x);
    if (typeof v !== 'boolean') throw new ExpressionError('&&, || and ! need true or false on both sides');
    return v;
  };
  const str = (x: Node): string => {
    const v = ev(x);
    if (typeof v !== 'string') throw new ExpressionError('a string is expected');
    return v;
  };
  switch (n.k) {
    case 'str':
      return n.v;
    case 'label':
      return Object.hasOwn(labels, n.key) ? labels[n.key]! : '';
    case 'trait':
      return Object.hasOwn(traits, n.key) ? traits[n.key]! : [];
    case 'not':
      return !bool(n.a);
    case 'and':
      return bool(n.a) && bool(n.b);
    case 'or':
      return bool(n.a) || bool(n.b);
    case 'eq':
    case 'ne': {
      const a = ev(n.a);
      const b = ev(n.b);
      const same = Array.isArray(a) || Array.isArray(b) ? JSON.stringify(a) === JSON.stringify(b) : a === b;
      return n.k === 'eq' ? same : !same;
    }
    case 'call': {
      if (n.fn === 'contains') {
        const list = ev(n.args[0]!);
        const item = str(n.args[1]!);
        if (typeof list === 'string') return list.includes(item);
        if (Array.isArray(list)) return list.includes(item);
        throw new ExpressionError('contains needs a list or a string first');
      }
      const a = str(n.args[0]!);
      const b = str(n.args[1]!);
      return n.fn === 'hasPrefix' ? a.startsWith(b) : n.fn === 'hasSuffix' ? a.endsWith(b) : a === b;
    }
  }
}
