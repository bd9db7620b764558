import { sha256 } from '../checksum.js';
import { FlotillaError } from '../errors.js';
import { MAX_NAME_BYTES } from '../slug.js';
import type { Statement } from '../migration.js';
import type { RawStatement } from './parser.js';
import type { AstNode, AstValue } from './ast.js';
import { isNode, nameList, stringField, walk } from './ast.js';
import { deparseStatement, scanTokens } from './parser.js';
import { quoteIdent } from './quote.js';

/** Schemas every tenant may read from but never owns. */
const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_temp', 'pg_toast']);

/** Keys whose value is a possibly schema-qualified name list, `[schema?, name]`. */
const QUALIFIED_NAME_KEYS = new Set(['names', 'funcname', 'objname', 'defnames', 'typeName', 'domainname', 'collname', 'opclass', 'opfamilyname', 'conversion_name']);

/** Object types whose name lists are `[schema?, table, member]`. */
const MEMBER_OBJECTS = new Set(['OBJECT_COLUMN', 'OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE', 'OBJECT_TABCONSTRAINT']);

/** Casts of a string that names a schema object: the string's schema part is rewritten. */
const OBJECT_NAME_TYPES = new Set(['regclass', 'regtype', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig', 'regdictionary', 'regcollation']);

/** Functions whose first argument is an object's name as a string. */
const NAME_ARGUMENT_FUNCTIONS = new Set(['nextval', 'currval', 'setval', 'to_regclass', 'to_regtype', 'to_regproc', 'to_regprocedure', 'pg_get_serial_sequence']);

/**
 * The schema a schema tenant gets for a schema its migrations name: `public`
 * becomes the tenant's own schema, any other becomes `<tenant schema>__<name>`
 * (shortened with a hash when PostgreSQL's 63-byte limit would cut it).
 */
export function tenantSchemaMap(tenantSchema: string, createdSchemas: Iterable<string>): Map<string, string> {
  const map = new Map<string, string>([['public', tenantSchema]]);
  for (const schema of createdSchemas) {
    if (schema === 'public' || map.has(schema)) continue;
    const base = `${tenantSchema}__`;
    let name = `${base}${schema}`;
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
      // Shortened within the created schema's part only, so the `__` after the tenant's own name stays:
      // that separator is what keeps one tenant's schemas apart from every other tenant's.
      const room = MAX_NAME_BYTES - Buffer.byteLength(base) - 9;
      if (room < 1) {
        throw new FlotillaError(
          'FLO_SLUG_INVALID',
          `Schema tenant schema "${tenantSchema}" is too long to hold the schema "${schema}" its migrations create: "${name}" is over PostgreSQL's ${MAX_NAME_BYTES}-byte limit.`,
          {
            hint: 'Use a shorter schemaPrefix in the config or a shorter slug, or a shorter schema name in the migration.',
            meta: { schema: tenantSchema, created: schema },
          },
        );
      }
      name = `${base}${truncateBytes(schema, room)}_${sha256(schema).slice(0, 8)}`;
    }
    map.set(schema, name);
  }
  return map;
}

function truncateBytes(text: string, bytes: number): string {
  let out = '';
  for (const char of text) {
    if (Buffer.byteLength(out + char) > bytes) break;
    out += char;
  }
  return out;
}

export interface RewriteContext {
  readonly map: ReadonlyMap<string, string>;
  readonly file: string;
}

/** What rewriting added to a statement: `rewritten` says the SQL differs from the file. */
export interface RewriteResult {
  readonly rewritten: boolean;
  /** The schemas named in the statement that were mapped to the tenant's own. */
  readonly schemas: readonly string[];
}

/** A statement as a schema tenant runs it. */
export type TenantStatement = Statement & RewriteResult;

/**
 * Rewrites every schema reference of a statement for a schema tenant (parse →
 * rewrite → deparse). A statement with no schema reference keeps its original
 * text and lands in the tenant schema through `search_path`. A reference to a
 * schema the tenant does not own is refused.
 */
export function rewriteForSchemaTenant<S extends RawStatement>(statement: S, context: RewriteContext): S & RewriteResult {
  // Most statements name no schema: a first pass over the tree as parsed finds that out without copying it
  // (a data migration's tree is large), and refuses an escape just the same.
  // `node` named: a statement may hold its tree in a getter, which a spread alone would drop.
  if (!probeSchemaTenant(statement, context).rewritten) return { ...statement, node: statement.node, rewritten: false, schemas: [] };
  const node = structuredClone(statement.node);
  const rewriter = new Rewriter(context, statement, false);
  rewriter.rewriteTree(node);
  return { ...statement, node, sql: deparseStatement(node), rewritten: true, schemas: [...rewriter.mapped] };
}

/** What rewriting a statement for a schema tenant would do, without doing it (lint needs no rewritten text). */
export function probeSchemaTenant(statement: RawStatement, context: RewriteContext): RewriteResult {
  const probe = new Rewriter(context, statement, true);
  probe.rewriteTree(statement.node);
  return { rewritten: probe.changed, schemas: [...probe.mapped] };
}

class Rewriter {
  changed = false;
  readonly mapped = new Set<string>();
  private readonly owned: Set<string>;

  constructor(
    private readonly context: RewriteContext,
    private readonly statement: RawStatement,
    /** Change nothing, only find out what would change. */
    private readonly probe: boolean,
  ) {
    this.owned = new Set(context.map.values());
  }

  private markChanged(): void {
    this.changed = true;
  }

  rewriteTree(root: AstNode): void {
    walk(root, (node) => this.visit(node));
  }

  /** Maps one schema name, or refuses it. */
  private schema(name: string): string {
    const mapped = this.context.map.get(name);
    if (mapped !== undefined) {
      this.markChanged();
      this.mapped.add(name);
      // A probe leaves the tree as it is: every assignment of this result writes back the same name.
      return this.probe ? name : mapped;
    }
    if (SYSTEM_SCHEMAS.has(name) || this.owned.has(name)) return name;
    throw new FlotillaError('FLO_SCHEMA_ESCAPE', `${this.context.file}:${this.statement.line}: the statement uses schema "${name}", which a schema tenant does not own.`, {
      hint: `A schema tenant may only touch its own schemas (${[...this.context.map.keys()].join(', ')} as named in migrations). Create "${name}" in an earlier migration so each tenant gets its own copy, or use the database tenancy kind.`,
      meta: { file: this.context.file, line: this.statement.line, schema: name },
    });
  }

  private visit(node: AstNode): void {
    // Fields typed as RangeVar (`relation`, `rel`, ...) are emitted without the `{RangeVar: ...}` wrapper.
    if (typeof node.relname === 'string') {
      const schemaname = stringField(node, 'schemaname');
      if (schemaname) node.schemaname = this.schema(schemaname);
    }
    const type = Object.keys(node)[0];
    const body = type ? node[type] : undefined;
    if (isNode(body)) this.visitTyped(type!, body);
    for (const [childKey, value] of Object.entries(node)) {
      if (QUALIFIED_NAME_KEYS.has(childKey)) this.qualifiedList(value, 2);
    }
  }

  private visitTyped(type: string, body: AstNode): void {
    switch (type) {
      case 'CreateSchemaStmt': {
        const schemaname = stringField(body, 'schemaname');
        if (schemaname) body.schemaname = this.schema(schemaname);
        return;
      }
      case 'ColumnRef':
        this.qualifiedList(body.fields, 3);
        return;
      case 'DropStmt':
      case 'CommentStmt':
      case 'AlterOwnerStmt':
      case 'AlterObjectSchemaStmt':
      case 'RenameStmt':
        this.objectNames(body);
        if (type === 'AlterObjectSchemaStmt') {
          const newschema = stringField(body, 'newschema');
          if (newschema) body.newschema = this.schema(newschema);
        }
        return;
      case 'GrantStmt':
        if (body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' || body.objtype === 'OBJECT_SCHEMA') this.schemaStrings(body.objects);
        return;
      case 'VariableSetStmt':
        if (body.name === 'search_path') this.searchPath(body);
        return;
      case 'DoStmt':
      case 'CreateFunctionStmt':
        this.procedureBody(body);
        return;
      case 'TypeCast': {
        // 'public.accounts_id_seq'::regclass, as pg_dump writes sequence defaults.
        const castTo = nameList(isNode(body.typeName) ? body.typeName.names : undefined)?.at(-1);
        if (castTo === 'regnamespace') this.stringConstant(body.arg, (text) => this.schemaString(text));
        else if (castTo && OBJECT_NAME_TYPES.has(castTo)) this.stringConstant(body.arg, (text) => this.rewriteBody(text));
        return;
      }
      case 'FuncCall': {
        // nextval('public.accounts_id_seq'): the argument is a name in a string.
        const called = nameList(body.funcname)?.at(-1);
        if (called && NAME_ARGUMENT_FUNCTIONS.has(called) && Array.isArray(body.args)) this.stringConstant(body.args[0], (text) => this.rewriteBody(text));
        return;
      }
      default:
        return;
    }
  }

  /** `[schema, name]` (or `[schema, table, column]` at `minLength` 3): rewrites the schema part. */
  private qualifiedList(value: AstValue | undefined, minLength: number): void {
    const names = nameList(value);
    if (!names || names.length < minLength || !Array.isArray(value)) return;
    const first = value[0];
    if (!isNode(first) || !isNode(first.String)) return;
    first.String.sval = this.schema(names[0]!);
  }

  private objectNames(body: AstNode): void {
    const objtype = stringField(body, 'removeType') ?? stringField(body, 'objtype') ?? stringField(body, 'objectType') ?? stringField(body, 'renameType');
    const objects = Array.isArray(body.objects) ? body.objects : body.object !== undefined ? [body.object] : [];
    if (objtype === 'OBJECT_SCHEMA') {
      this.schemaStrings(objects);
      if (type(body) === 'rename') {
        const subname = stringField(body, 'subname');
        if (subname) body.subname = this.schema(subname);
      }
      return;
    }
    const minLength = objtype && MEMBER_OBJECTS.has(objtype) ? 3 : 2;
    for (const object of objects) {
      if (isNode(object) && isNode(object.List)) this.qualifiedList(object.List.items, minLength);
    }
  }

  private schemaStrings(values: AstValue | undefined): void {
    if (!Array.isArray(values)) return;
    for (const value of values) {
      if (isNode(value) && isNode(value.String) && typeof value.String.sval === 'string') value.String.sval = this.schema(value.String.sval);
    }
  }

  /** A string constant holding names: replaced by what `rewrite` makes of it. */
  private stringConstant(value: AstValue | undefined, rewrite: (text: string) => string): void {
    const aConst = isNode(value) ? value.A_Const : undefined;
    if (!isNode(aConst) || !isNode(aConst.sval) || typeof aConst.sval.sval !== 'string') return;
    const rewritten = rewrite(aConst.sval.sval);
    if (rewritten === aConst.sval.sval) return;
    this.markChanged();
    if (!this.probe) aConst.sval.sval = rewritten;
  }

  /** A schema's name as a string (`'public'::regnamespace`). */
  private schemaString(text: string): string {
    const name = identifierValue(text.trim());
    return name === undefined ? text : quoteIdent(this.schema(name));
  }

  private searchPath(body: AstNode): void {
    walk(body.args, (node) => {
      const aConst = node.A_Const;
      if (isNode(aConst) && isNode(aConst.sval) && typeof aConst.sval.sval === 'string') aConst.sval.sval = this.schema(aConst.sval.sval);
    });
  }

  /** PL/pgSQL bodies are strings to the SQL parser: rewrite `schema.` prefixes by PostgreSQL's own tokens. */
  private procedureBody(body: AstNode): void {
    walk(body, (node) => {
      const defElem = node.DefElem;
      if (!isNode(defElem) || defElem.defname !== 'as') return;
      walk(defElem.arg, (inner) => {
        if (isNode(inner.String) && typeof inner.String.sval === 'string') {
          const rewritten = this.rewriteBody(inner.String.sval);
          if (rewritten !== inner.String.sval) {
            this.markChanged();
            if (!this.probe) inner.String.sval = rewritten;
          }
        }
      });
    });
  }

  private rewriteBody(text: string): string {
    const tokens = scanTokens(text);
    let out = '';
    let copied = 0;
    const bytes = Buffer.from(text, 'utf8');
    for (let i = 0; i + 1 < tokens.length; i++) {
      const token = tokens[i]!;
      if (tokens[i + 1]!.text !== '.') continue;
      const previous = tokens[i - 1];
      if (previous && previous.text === '.') continue;
      const name = identifierValue(token.text);
      const mapped = name === undefined ? undefined : this.context.map.get(name);
      if (mapped === undefined) continue;
      this.mapped.add(name!);
      out += bytes.subarray(copied, token.start).toString('utf8') + quoteIdent(mapped);
      copied = token.end;
    }
    if (copied === 0) return text;
    return out + bytes.subarray(copied).toString('utf8');
  }
}

function type(body: AstNode): 'rename' | 'other' {
  return 'renameType' in body ? 'rename' : 'other';
}

/** The value of an identifier token: `"Foo"` → `Foo`, `Foo` → `foo`; undefined for non-identifiers. */
function identifierValue(text: string): string | undefined {
  if (text.startsWith('"') && text.endsWith('"') && text.length >= 2) return text.slice(1, -1).replaceAll('""', '"');
  if (/^[A-Za-z_][A-Za-z0-9_$]*$/.test(text)) return text.toLowerCase();
  return undefined;
}
