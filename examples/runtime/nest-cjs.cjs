// A Nest app compiled to CommonJS, as `nest build` emits it: it loads the
// runtime (an ES module) with require(), which Node 20.19+ and 22.12+ allow.
// The decorators are applied as tsc emits them for @Controller(), @Get(),
// @Inject() and @Tenant(). Run: FLOTILLA_DATABASE_URL=... PORT=3000 node nest-cjs.cjs
const { Controller, Get, Inject, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { FlotillaModule, Tenant, TenantDatabase } = require('flotilla/runtime/nest');

class WhoController {
  constructor(db) {
    this.db = db;
  }

  async whoami(tenant) {
    const { rows } = await this.db.query('SELECT slug FROM who');
    return { tenant: tenant.slug, who: rows[0]?.slug };
  }
}
Inject(TenantDatabase)(WhoController, undefined, 0);
Tenant()(WhoController.prototype, 'whoami', 0);
Get('whoami')(WhoController.prototype, 'whoami', Object.getOwnPropertyDescriptor(WhoController.prototype, 'whoami'));
Controller()(WhoController);

class AppModule {}
// The runtime reads its control database from FLOTILLA_DATABASE_URL.
Module({ imports: [FlotillaModule.forRoot({})], controllers: [WhoController] })(AppModule);

async function main() {
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  console.log(JSON.stringify({ port: app.getHttpServer().address().port }));
  // Closing the app closes the runtime the module opened: the process then exits by itself.
  process.once('SIGTERM', () => void app.close());
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
