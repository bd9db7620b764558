import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { FlotillaError } from '../core/errors.js';
import { parseServerUrl } from '../postgres/server-url.js';

const duration = z.string().regex(/^\d+\s*(ms|s|min|h)?$/, 'a PostgreSQL duration such as "10s", "500ms" or "15min"');

/**
 * A tenant name is the prefix and the slug; PostgreSQL cuts names at 63 bytes, so
 * a prefix leaves room for slugs of at least 23 characters (longer slugs are
 * refused by name when they would not fit).
 */
const namePrefix = z
  .string()
  .regex(/^[a-z_][a-z0-9_]*$/, 'lowercase letters, digits and "_"')
  .max(40, "at most 40 characters, so that prefix and slug fit PostgreSQL's 63-byte limit for names");

export const configSchema = z.strictObject({
  /** Server and control database; absent: an embedded PostgreSQL under `.flotilla/`. */
  databaseUrl: z.string().optional(),
  migrationsDir: z.string().default('migrations'),
  tenants: z
    .strictObject({
      defaultKind: z.enum(['database', 'schema']).default('database'),
      /** `tenant_` → database `tenant_acme_paris` for slug `acme-paris`. */
      databasePrefix: namePrefix.default('tenant_'),
      schemaPrefix: namePrefix.default('tenant_'),
      /** The shared database holding schema tenants. */
      schemaDatabase: z
        .string()
        .regex(/^[a-z_][a-z0-9_]*$/, 'lowercase letters, digits and "_"')
        .max(63, 'at most 63 characters: PostgreSQL cuts longer names')
        .default('flotilla_tenants'),
    })
    .prefault({}),
  engine: z
    .strictObject({
      lockWaitMs: z.number().int().min(0).default(30_000),
      lockTimeout: duration.default('10s'),
      statementTimeout: duration.default('15min'),
      allowOutOfOrder: z.boolean().default(false),
    })
    .prefault({}),
  embedded: z
    .strictObject({
      dataDir: z.string().default('.flotilla/postgres'),
    })
    .prefault({}),
  lint: z
    .strictObject({
      /** Report hard-coded schemas (FN601/FN602); default: when tenants.defaultKind is "schema". */
      schemaTenants: z.boolean().optional(),
      /** Tables hold tenant rows in shared tables: each new table needs this column and row-level security. */
      tenantColumn: z.string().optional(),
      globalTables: z.array(z.string()).default([]),
    })
    .prefault({}),
  verify: z
    .strictObject({
      /** Compare each affected table before commit: rows, tables and column data must not be lost. */
      enabled: z.boolean().default(true),
      /** Tables with at most this many rows are also hashed row by row: replaced rows and overwritten values are seen. */
      checksumMaxRows: z.number().int().min(0).default(100_000),
      /** Existing values overwritten (an UPDATE, an upsert): reported, or refused unless allowed with FV705. */
      values: z.enum(['report', 'refuse']).default('report'),
    })
    .prefault({}),
  backup: z
    .strictObject({
      /** Backup before an upgrade: always, only when risky (default), or never. */
      policy: z.enum(['always', 'risky', 'never']).default('risky'),
      strategy: z.enum(['dump', 'snapshot']).default('dump'),
      /** When a snapshot cannot be taken (open connections, schema tenant), take a dump instead. */
      fallbackToDump: z.boolean().default(true),
      dir: z.string().default('.flotilla/backups'),
      /** Keep this many backups per tenant (older ones are removed after each new one); 0 keeps all. */
      keep: z.number().int().min(0).default(0),
    })
    .prefault({}),
  bundles: z
    .strictObject({
      /** The product bundles are built for, and the only one a site accepts (default: the project's package.json name, else its folder's). */
      product: z.string().min(1).max(100).optional(),
      /** Where a site installs a bundle's application payload (a new folder, then a rename); absent: payloads are not installed. */
      appDir: z.string().optional(),
      /** Where `bundle apply` writes its reports (text and JSON). */
      reportsDir: z.string().default('.flotilla/reports'),
      /** The site's own signing key: when this file exists, reports are signed with it. */
      siteKey: z.string().default('.flotilla/site-keys/flotilla-signing.key'),
      /** The largest bundle accepted, unpacked (a decompression bomb stops here). */
      maxUnpackedBytes: z
        .number()
        .int()
        .positive()
        .max(4 * 1024 ** 3, 'at most 4294967296 (4 GiB): a bundle is checked in memory')
        .default(1024 ** 3),
    })
    .prefault({}),
});

export type FlotillaConfig = z.output<typeof configSchema>;
export type FlotillaConfigInput = z.input<typeof configSchema>;

export const CONFIG_FILES = ['flotilla.config.json', 'flotilla.config.ts'] as const;

/** A config with every path absolute and the environment applied. */
export interface ResolvedConfig extends FlotillaConfig {
  readonly projectDir: string;
  readonly configFile: string | undefined;
}

/**
 * Reads `flotilla.config.json` (or `.ts`) from the project directory, validates
 * it (every problem at once, unknown keys rejected), then applies the
 * environment, which wins: FLOTILLA_DATABASE_URL and FLOTILLA_MIGRATIONS_DIR.
 */
export async function loadConfig(options: { cwd?: string; file?: string; env?: NodeJS.ProcessEnv; overrides?: FlotillaConfigInput } = {}): Promise<ResolvedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const file = options.file ? resolve(cwd, options.file) : CONFIG_FILES.map((name) => resolve(cwd, name)).find((path) => existsSync(path));
  if (options.file && !existsSync(file!)) {
    throw new FlotillaError('FLO_CONFIG_NOT_FOUND', `Config file ${options.file} does not exist.`, {
      hint: 'Write one (`flotilla init` does), or give the path of the right one.',
      meta: { file: options.file },
    });
  }
  const raw = file ? await readConfigFile(file) : {};
  const config = validateConfig({ ...(raw as object), ...options.overrides }, file ?? 'configuration');
  const databaseUrl = env.FLOTILLA_DATABASE_URL || config.databaseUrl;
  if (databaseUrl) parseServerUrl(databaseUrl);
  const migrationsDir = env.FLOTILLA_MIGRATIONS_DIR || config.migrationsDir;
  const projectDir = file ? resolve(file, '..') : cwd;
  return {
    ...config,
    databaseUrl,
    migrationsDir: isAbsolute(migrationsDir) ? migrationsDir : resolve(projectDir, migrationsDir),
    embedded: { dataDir: resolve(projectDir, config.embedded.dataDir) },
    backup: { ...config.backup, dir: resolve(projectDir, config.backup.dir) },
    bundles: {
      ...config.bundles,
      appDir: config.bundles.appDir === undefined ? undefined : resolve(projectDir, config.bundles.appDir),
      reportsDir: resolve(projectDir, config.bundles.reportsDir),
      siteKey: resolve(projectDir, config.bundles.siteKey),
    },
    projectDir,
    configFile: file,
  };
}

export function validateConfig(raw: unknown, source: string): FlotillaConfig {
  const parsed = configSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  throw new FlotillaError('FLO_CONFIG_INVALID', `${source} is invalid:\n  - ${problems.join('\n  - ')}`, {
    hint: 'Fix each problem listed; allowed keys are databaseUrl, migrationsDir, tenants, engine, embedded, lint, verify, backup and bundles (see the README, "Configuration").',
    meta: { source, problems },
  });
}

async function readConfigFile(file: string): Promise<unknown> {
  if (file.endsWith('.ts')) {
    // tsx is an optional peer: only a TypeScript config needs it.
    const { tsImport } = await import('tsx/esm/api').catch(() => {
      throw new FlotillaError('FLO_CONFIG_INVALID', `${file} is TypeScript, and reading it needs the tsx package, which is not installed.`, {
        hint: 'Install it beside Flotilla (npm install --save-dev tsx), or write the config as flotilla.config.json.',
        meta: { source: file, problems: ['tsx is not installed'] },
      });
    });
    const module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: { default?: unknown } };
    // Outside an ESM package the default export arrives wrapped once more (CommonJS interop).
    const value = module.default && typeof module.default === 'object' && 'default' in module.default ? module.default.default : module.default;
    return value ?? {};
  }
  const text = await readFile(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new FlotillaError('FLO_CONFIG_INVALID', `${file} is not valid JSON: ${(cause as Error).message}`, {
      hint: 'Fix the JSON syntax (a trailing comma or a missing quote is the usual cause).',
      meta: { source: file },
      cause,
    });
  }
}
