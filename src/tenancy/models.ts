import type { Tenant, TenantKind } from '../core/tenant.js';
import { databaseModel } from './database-model.js';
import type { TenancyModel } from './model.js';
import { schemaModel } from './schema-model.js';

export type { TenancyModel };

const MODELS: Readonly<Record<TenantKind, TenancyModel>> = { database: databaseModel, schema: schemaModel };

/** The model of a tenant kind: the one place that knows what the kind means. */
export function tenancyModel(kind: TenantKind): TenancyModel {
  return MODELS[kind];
}

/** Tenants grouped by their model, for work done in bulk per kind. */
export function byModel(tenants: readonly Tenant[]): [TenancyModel, Tenant[]][] {
  return (Object.keys(MODELS) as TenantKind[])
    .map((kind) => [MODELS[kind], tenants.filter((t) => t.kind === kind)] as [TenancyModel, Tenant[]])
    .filter(([, group]) => group.length > 0);
}
