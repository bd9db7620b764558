import type { IncomingMessage, ServerResponse } from 'node:http';
import type {
  ArgumentsHost,
  DynamicModule,
  ExceptionFilter,
  ExecutionContext,
  InjectionToken,
  MiddlewareConsumer,
  NestMiddleware,
  NestModule,
  OnApplicationShutdown,
} from '@nestjs/common';
import { Catch, createParamDecorator, Inject, Injectable, Module } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type pg from 'pg';
import { FlotillaError } from '../../core/errors.js';
import { answerFor } from '../answer.js';
import type { TenantContext } from '../context.js';
import { currentTenant } from '../context.js';
import { nodeRequestInfo } from '../node-request.js';
import type { RuntimeOptions, TenantPool, TenantRuntime } from '../runtime.js';
import { createRuntime } from '../runtime.js';
import type { Queryable } from '../tenant-db.js';

// Our build compiles without experimentalDecorators, so Nest's decorators are
// applied as the functions they are; apps use them with `@` as usual.

/** The injection token of the TenantRuntime: `@Inject(FLOTILLA_RUNTIME) runtime: TenantRuntime`. */
export const FLOTILLA_RUNTIME = 'FLOTILLA_RUNTIME';

const MODULE_OPTIONS = 'FLOTILLA_MODULE_OPTIONS';

/** Where the middleware applies: every route, less the ones excluded (a health check, say). */
interface Routes {
  readonly exclude?: readonly Excluded[];
}

/** A path or `{ path, method }`, as MiddlewareConsumer's exclude() takes them. */
type Excluded = Parameters<ReturnType<MiddlewareConsumer['apply']>['exclude']>[number];

/** A runtime the app opened and closes itself, or the options to open one that the module closes on shutdown. */
export type FlotillaModuleOptions = ({ readonly runtime: TenantRuntime } | RuntimeOptions) & Routes;

export interface FlotillaModuleAsyncOptions {
  readonly imports?: DynamicModule['imports'];
  readonly inject?: InjectionToken[];
  readonly useFactory: (...args: never[]) => FlotillaModuleOptions | Promise<FlotillaModuleOptions>;
}

/** Requests admitted by the middleware, for @Tenant() to read whatever the platform wraps them in. */
const admitted = new WeakMap<object, TenantContext>();

/**
 * Resolves each request's tenant and runs the rest of it (guards, pipes,
 * controller) in its scope; answers 400/403/404/410/503 as JSON itself when
 * the tenant cannot be served. A `/t/<slug>` path prefix is removed before routing.
 */
export class TenantMiddleware implements NestMiddleware {
  constructor(private readonly runtime: TenantRuntime) {}

  use(req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void): void {
    this.runtime.admit(nodeRequestInfo(req, req.url ?? '/')).then(
      ({ tenant, url }) => {
        admitted.set(req, tenant);
        if (url !== undefined) req.url = url;
        this.runtime.within(tenant, () => next());
      },
      (error: unknown) => {
        const answer = answerFor(error);
        // The Node response itself: Nest hands middleware the platform's raw response on Fastify.
        res.writeHead(answer.status, answer.headers).end(JSON.stringify(answer.body));
      },
    );
  }
}
Injectable()(TenantMiddleware);
Inject(FLOTILLA_RUNTIME)(TenantMiddleware, undefined, 0);

/** The current tenant's database, to inject into services: each call is on the tenant of the request it serves. */
export class TenantDatabase implements Queryable {
  constructor(private readonly runtime: TenantRuntime) {}

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.runtime.db.query<R>(text, values);
  }

  /** Runs `fn` in one transaction: committed when it returns, rolled back when it throws. */
  tx<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    return this.runtime.db.tx(fn);
  }

  /** Runs `fn` with the tenant's session itself, given back when `fn` settles. */
  client<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    return this.runtime.db.client(fn);
  }

  /** A pg.Pool-like object for a query builder (Kysely's PostgresDialect, say). */
  pool(): TenantPool {
    return this.runtime.pool();
  }
}
Injectable()(TenantDatabase);
Inject(FLOTILLA_RUNTIME)(TenantDatabase, undefined, 0);

/** The request's tenant, as a controller parameter: `whoami(@Tenant() tenant: TenantContext)`. */
export const Tenant: () => ParameterDecorator = createParamDecorator((_data: unknown, context: ExecutionContext): TenantContext => {
  const request = context.switchToHttp().getRequest<{ raw?: object } | undefined>();
  const found = request && (admitted.get(request) ?? (request.raw && admitted.get(request.raw)));
  // Outside an HTTP request (a microservice handler, say), the scope of runAs() may hold it.
  return found ?? currentTenant();
});

/**
 * Answers a FlotillaError a controller or guard let through as the middleware
 * would (a tenant runAs() refused, the connection budget exhausted: 503 with
 * Retry-After) instead of Nest's 500. Opt in: `{ provide: APP_FILTER, useClass: FlotillaExceptionFilter }`.
 */
export class FlotillaExceptionFilter implements ExceptionFilter<FlotillaError> {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(error: FlotillaError, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw error;
    const { httpAdapter } = this.adapterHost;
    const response: unknown = host.switchToHttp().getResponse();
    const answer = answerFor(error);
    for (const [name, value] of Object.entries(answer.headers)) httpAdapter.setHeader(response, name, value);
    httpAdapter.reply(response, answer.body, answer.status);
  }
}
Catch(FlotillaError)(FlotillaExceptionFilter);
Inject(HttpAdapterHost)(FlotillaExceptionFilter, undefined, 0);

/**
 * The tenant runtime as a Nest module, global: provides FLOTILLA_RUNTIME and
 * TenantDatabase, and mounts TenantMiddleware on every route.
 */
export class FlotillaModule implements NestModule, OnApplicationShutdown {
  constructor(
    private readonly options: FlotillaModuleOptions,
    private readonly runtime: TenantRuntime,
  ) {}

  static forRoot(options: FlotillaModuleOptions): DynamicModule {
    return dynamicModule([{ provide: MODULE_OPTIONS, useValue: options }]);
  }

  /** Options from other providers (a ConfigService, say). */
  static forRootAsync(options: FlotillaModuleAsyncOptions): DynamicModule {
    return dynamicModule([{ provide: MODULE_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }], options.imports);
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(TenantMiddleware)
      .exclude(...(this.options.exclude ?? []))
      // A path given as a string is mounted with Express's use(), as a prefix:
      // '/' runs for every route and leaves req.url whole, where a wildcard
      // ('{*path}') would strip it, and `{ path, method: ALL }` match '/' alone.
      .forRoutes('/');
  }

  /** After the server stopped taking requests: closes the runtime the module opened, not one it was given. */
  async onApplicationShutdown(): Promise<void> {
    if (!('runtime' in this.options)) await this.runtime.close();
  }
}
Inject(MODULE_OPTIONS)(FlotillaModule, undefined, 0);
Inject(FLOTILLA_RUNTIME)(FlotillaModule, undefined, 1);
Module({})(FlotillaModule);

function dynamicModule(options: NonNullable<DynamicModule['providers']>, imports: DynamicModule['imports'] = []): DynamicModule {
  return {
    module: FlotillaModule,
    global: true,
    imports,
    providers: [
      ...options,
      {
        provide: FLOTILLA_RUNTIME,
        useFactory: (given: FlotillaModuleOptions) => ('runtime' in given ? given.runtime : createRuntime(given)),
        inject: [MODULE_OPTIONS],
      },
      TenantDatabase,
    ],
    exports: [FLOTILLA_RUNTIME, TenantDatabase],
  };
}
