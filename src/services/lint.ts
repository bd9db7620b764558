import type { LintReport } from '../core/lint/lint.js';
import type { MigrationSet } from '../core/migration-set.js';
import { tenancyModel } from '../tenancy/models.js';
import type { ServiceContext } from './context.js';
import { lintOptions } from './lint-options.js';

/** The migrations as the services see them, and their lint. */
export class LintService {
  constructor(private readonly ctx: ServiceContext) {}

  /** The migrations, read, checked against flotilla.sum and parsed (again whenever their files change). */
  migrations(): Promise<MigrationSet> {
    return this.ctx.migrations.current();
  }

  /** Lints the migrations; the rules for tenants sharing a database apply when such tenants exist (or the config says so). */
  async report(): Promise<LintReport> {
    const { config, registry } = this.ctx;
    const set = await this.ctx.migrations.current();
    const tenants = await registry.listTenants();
    const shared = config.lint.schemaTenants ?? (tenants.some((t) => tenancyModel(t.kind).sharesDatabase) || tenancyModel(config.tenants.defaultKind).sharesDatabase);
    return this.ctx.migrations.lint(set, lintOptions(config, shared));
  }
}
