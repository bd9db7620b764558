import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CONFIG_FILES } from '../../config/config.js';
import { FlotillaError } from '../../core/errors.js';
import { readMigrationDir } from '../../core/migration-file.js';
import { renderSumFile, SUM_FILE } from '../../core/sum-file.js';
import type { GlobalOptions } from '../context.js';
import { cliConfig } from '../context.js';
import { line, printJson } from '../output.js';

export function registerProjectCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('init')
    .description('write flotilla.config.json and an empty migrations directory')
    .option('--migrations-dir <dir>', 'where migrations live', 'migrations')
    .action(async (options: { migrationsDir: string }) => {
      const existing = CONFIG_FILES.find((name) => existsSync(resolve(name)));
      if (existing) {
        throw new FlotillaError('FLO_CONFIG_EXISTS', `${existing} already exists here.`, {
          hint: 'Edit it instead, or run `flotilla init` in another directory.',
          meta: { file: existing },
        });
      }
      await writeFile('flotilla.config.json', `${JSON.stringify({ migrationsDir: options.migrationsDir }, null, 2)}\n`);
      await mkdir(options.migrationsDir, { recursive: true });
      await writeFile(join(options.migrationsDir, SUM_FILE), renderSumFile([]));
      line(`Wrote flotilla.config.json and ${options.migrationsDir}/ (with ${SUM_FILE}).`);
      line('Next: `flotilla migration new <name>`, then `flotilla tenant create <slug>`.');
    });

  const migration = program.command('migration').description('create migration files and maintain flotilla.sum');
  migration
    .command('new <name>')
    .description('create <timestamp>_<name>.sql in the migrations directory')
    .option('--json', 'print the new file as JSON')
    .action(async (name: string, options: { json?: boolean }) => {
      if (!/^[a-z0-9][a-z0-9_]*$/.test(name)) {
        throw new FlotillaError('FLO_USAGE', `Invalid migration name ${JSON.stringify(name)}.`, {
          hint: 'Use lowercase letters, digits and "_", for example add_client_id.',
          meta: { name },
        });
      }
      const config = await cliConfig(globals());
      await mkdir(config.migrationsDir, { recursive: true });
      const version = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
      const file = join(config.migrationsDir, `${version}_${name}.sql`);
      await writeFile(file, `-- ${name}\n-- Plain SQL. The whole upgrade of a tenant runs in one transaction.\n\n`, { flag: 'wx' });
      await writeSum(config.migrationsDir);
      if (options.json) printJson({ file, version });
      else line(`Created ${file}. After editing it, run \`flotilla migration hash\`.`);
    });
  migration
    .command('hash')
    .description(`rewrite ${SUM_FILE} from the migration files`)
    .action(async () => {
      const config = await cliConfig(globals());
      const count = await writeSum(config.migrationsDir);
      line(`Wrote ${join(config.migrationsDir, SUM_FILE)} (${count} migrations).`);
    });
}

async function writeSum(dir: string): Promise<number> {
  const files = await readMigrationDir(dir);
  await writeFile(join(dir, SUM_FILE), renderSumFile(files));
  return files.length;
}
