import { Command, CommanderError } from 'commander';
import { registerAuditCommand } from './commands/audit.js';
import { registerBackupCommands } from './commands/backups.js';
import { registerBundleCommands } from './commands/bundles.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerLintCommand } from './commands/lint.js';
import { registerMigrateCommands } from './commands/migrate.js';
import { registerProjectCommands } from './commands/project.js';
import { registerRolloutCommands } from './commands/rollouts.js';
import { registerServerCommands } from './commands/servers.js';
import { registerTenantCommands } from './commands/tenants.js';
import { flotillaVersion } from '../services/flotilla-version.js';
import type { GlobalOptions } from './context.js';
import { EXIT_CODE_BY_FAMILY, reportError } from './output.js';

export function buildProgram(): Command {
  const program = new Command('flotilla')
    .description('Upgrade every tenant database of a multi-tenant app, all-or-nothing per tenant.')
    .version(flotillaVersion(), '-V', "print Flotilla's version (also --version, before any command)")
    .option('--config <file>', 'config file (default: flotilla.config.json or flotilla.config.ts here)')
    .showHelpAfterError()
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  registerProjectCommands(program, globals);
  registerTenantCommands(program, globals);
  registerServerCommands(program, globals);
  registerLintCommand(program, globals);
  registerMigrateCommands(program, globals);
  registerRolloutCommands(program, globals);
  registerBackupCommands(program, globals);
  registerBundleCommands(program, globals);
  registerAuditCommand(program, globals);
  registerDemoCommand(program);
  return program;
}

/** The CLI's only exit point: maps errors to their exit codes, by family (`EXIT_CODE_BY_FAMILY`). */
export async function main(argv: readonly string[]): Promise<number> {
  // `--version` only as the first argument: after a command it is that command's own (`bundle build --version 2.1.0`).
  if (argv[2] === '--version' && argv.length === 3) {
    process.stdout.write(`${flotillaVersion()}\n`);
    return 0;
  }
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    // Commander has printed its own message (an unknown option, a missing argument); --help and --version exit 0.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_CODE_BY_FAMILY.usage;
    return reportError(error, argv.includes('--json'));
  }
}
