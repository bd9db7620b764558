import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DynamicModule, INestApplication, Provider } from '@nestjs/common';
import { Controller, Get, Inject, Module, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FLOTILLA_RUNTIME, Tenant, TenantDatabase } from '../../src/runtime/adapters/nest.js';
import type { TenantContext, TenantRuntime } from '../../src/runtime/index.js';
import { findTenant } from '../../src/runtime/index.js';

// The test files compile without experimentalDecorators: Nest's decorators are
// applied here as the functions they are (examples/runtime/nest.ts uses `@`).

class WhoController {
  constructor(
    private readonly db: TenantDatabase,
    private readonly runtime: TenantRuntime,
  ) {}

  /** The tenant as @Tenant() gives it, as the scope has it, and as its database says. */
  async whoami(tenant: TenantContext) {
    const { rows } = await this.db.query<{ slug: string }>('SELECT slug FROM who');
    return { tenant: tenant.slug, source: tenant.source, who: rows[0]?.slug, scope: this.runtime.tenant().slug };
  }

  /** One transaction that holds its session a moment, so that concurrent requests overlap. */
  async slow(tenant: TenantContext) {
    return this.db.tx(async (db) => {
      await db.query('SELECT pg_sleep(0.05)');
      const { rows } = await db.query<{ who: string; items: number }>('SELECT (SELECT slug FROM who) AS who, (SELECT count(*)::int FROM items) AS items');
      return { tenant: tenant.slug, ...rows[0] };
    });
  }

  /** Work for another tenant, which the runtime may refuse. */
  async elsewhere(slug: string) {
    return this.runtime.runAs(slug, async () => (await this.db.query<{ slug: string }>('SELECT slug FROM who')).rows[0]);
  }

  health() {
    return { ok: true, tenant: findTenant()?.slug ?? null };
  }
}
Inject(TenantDatabase)(WhoController, undefined, 0);
Inject(FLOTILLA_RUNTIME)(WhoController, undefined, 1);
for (const [method, path] of [
  ['whoami', 'whoami'],
  ['slow', 'slow'],
  ['elsewhere', 'elsewhere'],
  ['health', 'health'],
] as const) {
  Get(path)(WhoController.prototype, method, Object.getOwnPropertyDescriptor(WhoController.prototype, method)!);
}
Tenant()(WhoController.prototype, 'whoami', 0);
Tenant()(WhoController.prototype, 'slow', 0);
Query('slug')(WhoController.prototype, 'elsewhere', 0);
Controller()(WhoController);

/** A Nest app on platform-express with the Flotilla module given, listening on 127.0.0.1 on a free port. */
export async function whoApp(flotilla: DynamicModule, providers: Provider[] = []): Promise<INestApplication> {
  class AppModule {}
  Module({ imports: [flotilla], controllers: [WhoController], providers })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  return app;
}

/** A module exporting one value, as a config module would. */
export function valueModule(token: string, value: unknown): DynamicModule {
  class ValueModule {}
  Module({})(ValueModule);
  return { module: ValueModule, providers: [{ provide: token, useValue: value }], exports: [token] };
}

export function portOf(app: INestApplication): number {
  return ((app.getHttpServer() as Server).address() as AddressInfo).port;
}
