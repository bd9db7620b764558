/** The server holding the control database: registered by Flotilla itself, its password never stored. */
export const MAIN_SERVER = 'main';

/** A registered server's name. */
export const SERVER_NAME_PATTERN = /^[a-z][a-z0-9-]{0,40}$/;

export const TENANT_KINDS = ['database', 'schema'] as const;
export type TenantKind = (typeof TENANT_KINDS)[number];

export const TENANT_STATUSES = ['provisioning', 'active', 'suspended', 'archived', 'restoring', 'upgrading'] as const;
export type TenantStatus = (typeof TENANT_STATUSES)[number];

export interface Server {
  readonly name: string;
  readonly url: string;
  readonly createdAt: string;
}

export interface Tenant {
  readonly id: string;
  readonly slug: string;
  readonly name: string;
  readonly kind: TenantKind;
  readonly server: string;
  readonly database: string;
  readonly schema: string;
  readonly status: TenantStatus;
  readonly plan: string | null;
  readonly settings: Record<string, unknown>;
  readonly tags: readonly string[];
  readonly domains: readonly { host: string; primary: boolean }[];
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** Where a tenant lives, and its status: the part of it that status and placement need. */
export type TenantPlacement = Pick<Tenant, 'slug' | 'kind' | 'status' | 'server' | 'database' | 'schema'>;
