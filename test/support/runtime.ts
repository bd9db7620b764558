import { Flotilla } from '../../src/flotilla.js';
import type { RuntimeOptions } from '../../src/runtime/index.js';
import { createRuntime, type TenantRuntime } from '../../src/runtime/index.js';
import type { TenantKind } from '../../src/core/tenant.js';
import type { TestProject } from './project.js';
import { testProject } from './project.js';

/**
 * A project whose tenants each hold a table `who` with one row: their own
 * slug. An answer read from `who` says whose data it came from.
 */
export interface RuntimeFixture {
  readonly project: TestProject;
  readonly flotilla: Flotilla;
  /** The control database's URL, as the runtime is given it. */
  readonly databaseUrl: string;
  /** Opens a runtime on this project's control database (closed by cleanup). */
  runtime(options?: Omit<RuntimeOptions, 'databaseUrl'>): Promise<TenantRuntime>;
  cleanup(): Promise<void>;
}

export const WHO_MIGRATION = {
  '0001_who.sql':
    'CREATE TABLE who (id int PRIMARY KEY, slug text NOT NULL);\nCREATE TABLE items (id serial PRIMARY KEY, who_id int NOT NULL, label text NOT NULL);\nCREATE INDEX items_who_idx ON items (who_id);',
};

export async function runtimeFixture(tenants: readonly { slug: string; kind: TenantKind }[], options: { concurrency?: number } = {}): Promise<RuntimeFixture> {
  const project = await testProject();
  await project.write(WHO_MIGRATION);
  const flotilla = await Flotilla.open({ config: project.config });
  const runtimes: TenantRuntime[] = [];
  const queue = [...tenants];
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const slug = t.slug;
      await flotilla.tenants.create({ slug, kind: t.kind });
      await flotilla.tenants.withClient(slug, async (c) => {
        await c.query('INSERT INTO who (id, slug) VALUES (1, $1)', [slug]);
        await c.query("INSERT INTO items (who_id, label) SELECT 1, $1 || '-' || i FROM generate_series(1, 3) i", [slug]);
      });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  const databaseUrl = project.env.FLOTILLA_DATABASE_URL!;
  return {
    project,
    flotilla,
    databaseUrl,
    async runtime(opts = {}) {
      const runtime = await createRuntime({ ...opts, databaseUrl });
      runtimes.push(runtime);
      return runtime;
    },
    async cleanup() {
      for (const runtime of runtimes) await runtime.close().catch(() => undefined);
      await flotilla.close();
      await project.cleanup();
    },
  };
}
