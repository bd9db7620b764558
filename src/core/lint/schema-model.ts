import type { AstNode } from '../sql/ast.js';
import { isNode, nameList, stringField, unwrap } from '../sql/ast.js';

export interface ColumnModel {
  type: string;
  notNull: boolean;
}

export interface TableModel {
  readonly key: string;
  /** Migration id that created it: "existing" means created by another (earlier) file. */
  readonly createdIn: string;
  readonly columns: Map<string, ColumnModel>;
  rls: boolean;
}

/** `schema.table` with unqualified names in `public`, the template schema of every migration. */
export function tableKey(relation: AstValueLike): string | undefined {
  if (!isNode(relation)) return undefined;
  const name = stringField(relation, 'relname');
  if (!name) return undefined;
  return `${stringField(relation, 'schemaname') ?? 'public'}.${name}`;
}

type AstValueLike = AstNode[keyof AstNode];

/**
 * The schema as the migrations so far leave it, replayed statement by
 * statement: tables with their columns, and enum types. Enough for the linter
 * to tell an existing table from a new one.
 */
export class SchemaModel {
  readonly tables = new Map<string, TableModel>();
  readonly enums = new Set<string>();
  /** Triggers by the function they run: `table.trigger` names. */
  readonly triggers = new Map<string, string[]>();

  table(relation: AstValueLike): TableModel | undefined {
    const key = tableKey(relation);
    return key ? this.tables.get(key) : undefined;
  }

  /** Applies one statement's effect on tables, columns and enums. */
  apply(kind: string, node: AstNode, migrationId: string): void {
    const body = unwrap(node);
    switch (kind) {
      case 'CreateStmt': {
        const key = tableKey(body.relation);
        if (!key || this.tables.has(key)) return;
        const table: TableModel = { key, createdIn: migrationId, columns: new Map(), rls: false };
        for (const element of Array.isArray(body.tableElts) ? body.tableElts : []) {
          if (isNode(element) && isNode(element.ColumnDef)) addColumn(table, element.ColumnDef);
        }
        this.tables.set(key, table);
        return;
      }
      case 'CreateTableAsStmt': {
        const into = body.into;
        const key = isNode(into) ? tableKey(into.rel) : undefined;
        if (key && !this.tables.has(key)) this.tables.set(key, { key, createdIn: migrationId, columns: new Map(), rls: false });
        return;
      }
      case 'DropStmt':
        for (const name of droppedNames(body)) {
          if (body.removeType === 'OBJECT_TABLE') this.tables.delete(name.includes('.') ? name : `public.${name}`);
          if (body.removeType === 'OBJECT_TYPE') this.enums.delete(name.split('.').pop()!);
          if (body.removeType === 'OBJECT_SCHEMA') for (const key of [...this.tables.keys()]) if (key.startsWith(`${name}.`)) this.tables.delete(key);
        }
        return;
      case 'RenameStmt': {
        const table = this.table(body.relation);
        const newname = stringField(body, 'newname');
        if (!table || !newname) return;
        if (body.renameType === 'OBJECT_TABLE') {
          this.tables.delete(table.key);
          const key = `${table.key.split('.')[0]}.${newname}`;
          this.tables.set(key, { ...table, key });
        } else if (body.renameType === 'OBJECT_COLUMN') {
          const old = stringField(body, 'subname');
          const column = old ? table.columns.get(old) : undefined;
          if (old && column) {
            table.columns.delete(old);
            table.columns.set(newname, column);
          }
        }
        return;
      }
      case 'AlterTableStmt': {
        const table = this.table(body.relation);
        if (!table) return;
        for (const cmd of alterCommands(body)) {
          const column = stringField(cmd, 'name');
          switch (cmd.subtype) {
            case 'AT_AddColumn':
              if (isNode(cmd.def) && isNode(cmd.def.ColumnDef)) addColumn(table, cmd.def.ColumnDef);
              break;
            case 'AT_DropColumn':
              if (column) table.columns.delete(column);
              break;
            case 'AT_AlterColumnType': {
              const def = isNode(cmd.def) && isNode(cmd.def.ColumnDef) ? cmd.def.ColumnDef : undefined;
              const existing = column ? table.columns.get(column) : undefined;
              if (existing && def) existing.type = typeNameOf(def.typeName);
              break;
            }
            case 'AT_SetNotNull': {
              const existing = column ? table.columns.get(column) : undefined;
              if (existing) existing.notNull = true;
              break;
            }
            case 'AT_EnableRowSecurity':
            case 'AT_ForceRowSecurity':
              table.rls = true;
              break;
            default:
              break;
          }
        }
        return;
      }
      case 'CreateTrigStmt': {
        const fn = nameList(body.funcname)?.pop();
        const table = tableKey(body.relation);
        const name = stringField(body, 'trigname');
        if (fn && table && name) this.triggers.set(fn, [...(this.triggers.get(fn) ?? []), `${table.replace(/^public\./, '')}.${name}`]);
        return;
      }
      case 'CreateEnumStmt': {
        const names = nameList(body.typeName);
        if (names) this.enums.add(names[names.length - 1]!);
        return;
      }
      default:
        return;
    }
  }

  /** Triggers (`table.trigger`) that run this function. */
  triggersCalling(fn: string): string[] {
    return this.triggers.get(fn) ?? [];
  }

  /** Tables with a column of this type name. */
  tablesUsingType(typeName: string): string[] {
    return [...this.tables.values()].filter((t) => [...t.columns.values()].some((c) => c.type === typeName)).map((t) => t.key);
  }
}

/** ALTER TABLE's sub-commands, unwrapped. */
export function alterCommands(body: AstNode): AstNode[] {
  const cmds = Array.isArray(body.cmds) ? body.cmds : [];
  return cmds.filter((c): c is AstNode => isNode(c) && isNode(c.AlterTableCmd)).map((c) => c.AlterTableCmd as AstNode);
}

/** Names a DROP statement removes: `schema.name` or `name` for tables and types, the name for schemas. */
export function droppedNames(body: AstNode): string[] {
  const objects = Array.isArray(body.objects) ? body.objects : [];
  return objects.flatMap((object) => {
    if (!isNode(object)) return [];
    if (isNode(object.String) && typeof object.String.sval === 'string') return [object.String.sval];
    if (isNode(object.List)) return [nameList(object.List.items)?.join('.') ?? ''].filter(Boolean);
    if (isNode(object.TypeName)) return [nameList(object.TypeName.names)?.join('.') ?? ''].filter(Boolean);
    return [];
  });
}

export function typeNameOf(typeName: AstNode[keyof AstNode]): string {
  return isNode(typeName) ? (nameList(typeName.names)?.pop() ?? '') : '';
}

function addColumn(table: TableModel, def: AstNode): void {
  const name = stringField(def, 'colname');
  if (!name) return;
  const constraints = Array.isArray(def.constraints) ? def.constraints : [];
  const notNull = constraints.some((c) => isNode(c) && isNode(c.Constraint) && (c.Constraint.contype === 'CONSTR_NOTNULL' || c.Constraint.contype === 'CONSTR_PRIMARY'));
  table.columns.set(name, { type: typeNameOf(def.typeName), notNull });
}
