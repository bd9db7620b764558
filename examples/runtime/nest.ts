import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { TenantContext } from 'flotilla/runtime';
import { FlotillaModule, Tenant, TenantDatabase } from 'flotilla/runtime/nest';

// Compiled with "experimentalDecorators" (examples/runtime/tsconfig.json), as Nest apps are.
@Controller()
class WhoController {
  // An explicit token: a compiler that emits no decorator metadata (esbuild, tsx) is enough.
  constructor(@Inject(TenantDatabase) private readonly db: TenantDatabase) {}

  // GET /whoami as paris.localhost:3000, /t/paris/whoami, ?tenant=paris or with X-Tenant-ID: paris.
  @Get('whoami')
  async whoami(@Tenant() tenant: TenantContext) {
    const { rows } = await this.db.query<{ slug: string }>('SELECT slug FROM who');
    return { tenant: tenant.slug, who: rows[0]?.slug };
  }
}

@Module({ controllers: [WhoController] })
class AppModule {}

export async function start(databaseUrl: string, port = 3000, host = '127.0.0.1') {
  // The module opens the runtime, and closes it when the app closes.
  const app = await NestFactory.create({ module: AppModule, imports: [FlotillaModule.forRoot({ databaseUrl })] }, { logger: false });
  await app.listen(port, host);
  const server: Server = app.getHttpServer();
  return { port: (server.address() as AddressInfo).port, close: () => app.close() };
}
