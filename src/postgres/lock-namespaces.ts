/**
 * Every advisory lock Flotilla takes, by the first of its two keys. Listed in one
 * place so that no two uses can share a namespace by accident.
 */
export const LOCK_NAMESPACES = {
  /** A tenant being migrated (tenant database or shared database); second key from its schema. */
  tenant: 0x464c4f54,
  /** A process's liveness (control database, session lock held while it lives); second key random. */
  runner: 0x464c5452,
  /** Claims on one rollout, serialized (control database, transaction lock); second key from the rollout id. */
  rolloutClaim: 0x464c5443,
  /** A tenant being created by an older version (control database, session lock); second key from its slug. Only tested now. */
  tenantCreate: 0x464c4352,
  /** A bundle being applied at a site (control database, session lock); second key 1. */
  bundleApply: 0x464c4241,
  /** The embedded server in use (its maintenance database, shared session locks). */
  embeddedInUse: 0x466c6f,
} as const;

/** The embedded server's in-use lock: both keys. */
export const EMBEDDED_IN_USE_LOCK = [LOCK_NAMESPACES.embeddedInUse, 0x656d62] as const;

/**
 * SQL: the liveness lock of the process whose key is in `keyColumn` is held, so
 * that process lives. `namespaceParam` is the parameter holding LOCK_NAMESPACES.runner.
 */
export function processAlive(keyColumn: string, namespaceParam: string): string {
  return `EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = ${namespaceParam}::int::oid
                    AND l.objid = ${keyColumn}::oid AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;
}
