import type { Command } from 'commander';
import { formatBytes } from '../../core/bytes.js';
import type { VerifiedBundle } from '../../core/bundle/verify.js';
import { EXIT_CODE_BY_FAMILY } from '../output.js';
import { FlotillaError } from '../../core/errors.js';
import type { GlobalOptions } from '../context.js';
import { cliConfig, withFlotilla } from '../context.js';
import { line, printJson, printTable } from '../output.js';

/** `keys generate` for the vendor; `bundle build` for the vendor, `bundle verify|apply|history` for the site. */
export function registerBundleCommands(program: Command, globals: () => GlobalOptions): void {
  const keys = program.command('keys').description("the vendor's signing keys");
  keys
    .command('generate')
    .description('write a new Ed25519 key pair: <dir>/flotilla-signing.key (0600, keep it secret) and <dir>/flotilla-signing.pub (give it to sites)')
    .requiredOption('--out <dir>', 'the directory to write the two files into')
    .option('--json', 'print JSON')
    .action(async (options: { out: string; json?: boolean }) => {
      const { generateKeyFiles } = await import('../../services/bundle-files.js');
      const written = await generateKeyFiles(options.out);
      if (options.json) return printJson(written);
      line(`Wrote ${written.privateKey} (private: keep it secret, never send it) and ${written.publicKey} (public: ship it with your software).`);
      line(`Key id ${written.keyId}.`);
    });

  const bundle = program.command('bundle').description('signed upgrade bundles for sites that host the software themselves');
  bundle
    .command('build')
    .description('pack the migrations (with flotilla.sum) and an optional application folder into one signed file')
    .requiredOption('--version <semver>', 'the release, for example 2.1.0')
    .requiredOption('--key <file>', 'the private key (flotilla-signing.key)')
    .option('--min-from <semver>', 'the oldest installed release this one upgrades from')
    .option('--expires <duration>', 'refused by sites after this long: 90d, 12h, 30m or none (default none)')
    .option('--app <dir>', 'an application folder to ship, installed at sites only once every tenant is upgraded')
    .option('--out <file>', 'the bundle file (default <product>-<version>.flotilla.tgz)')
    .option('--created <iso-time>', 'the creation time recorded (default SOURCE_DATE_EPOCH, else now): the same inputs and time give the same bytes')
    .option('--json', 'print JSON')
    .action(async (options: { version: string; key: string; minFrom?: string; expires?: string; app?: string; out?: string; created?: string; json?: boolean }) => {
      const createdAt = options.created === undefined ? undefined : new Date(options.created);
      if (createdAt && Number.isNaN(createdAt.getTime()))
        throw new FlotillaError('FLO_USAGE', `--created ${JSON.stringify(options.created!.slice(0, 60))} is not a time.`, { hint: 'For example --created 2026-11-01T00:00:00Z.' });
      const { buildBundle } = await import('../../services/bundle-build.js');
      const built = await buildBundle(await cliConfig(globals()), { ...options, createdAt });
      if (options.json) return printJson(built);
      const { manifest } = built;
      line(
        `Built ${built.file}: ${manifest.product} ${manifest.version}, ${manifest.migrations.count} migrations, ${manifest.files.length} files, ${formatBytes(built.sizeBytes)}.`,
      );
      line(`SHA-256 ${built.digest}, signed with key ${manifest.keyId}${manifest.expiresAt ? `, expires ${manifest.expiresAt}` : ''}.`);
    });
  bundle
    .command('verify <file>')
    .description("check a bundle offline: the vendor's signature, every file's checksum, safe paths, its size and expiry")
    .requiredOption('--pubkey <file>', "the vendor's public key (flotilla-signing.pub)")
    .option('--json', 'print JSON')
    .action(async (file: string, options: { pubkey: string; json?: boolean }) => {
      const verified = await verifyFile(file, options.pubkey, globals());
      if (options.json) return printJson(summary(verified));
      const { manifest } = verified;
      line(`The bundle is genuine: ${manifest.product} ${manifest.version}, signed with key ${manifest.keyId}, ${manifest.files.length} files checked.`);
      line(
        `Built ${manifest.createdAt}${manifest.expiresAt ? `, valid until ${manifest.expiresAt}` : ''}${manifest.minFrom ? `; upgrades from ${manifest.minFrom} or later` : ''}.`,
      );
    });
  bundle
    .command('apply <file>')
    .description('verify the bundle, back every tenant up, upgrade them all, check their rows, install the application, and write a report')
    .requiredOption('--pubkey <file>', "the vendor's public key (flotilla-signing.pub)")
    .option('--new-key', 'accept a bundle signed with another key than the releases installed so far (only when the vendor announced a new key)')
    .option('--json', 'print the report as JSON')
    .action(async (file: string, options: { pubkey: string; newKey?: boolean; json?: boolean }) => {
      // Verified before anything opens: a bad bundle starts no server and touches nothing.
      const verified = await verifyFile(file, options.pubkey, globals());
      if (!options.json) line(`The bundle is genuine: ${verified.manifest.product} ${verified.manifest.version}.`);
      await withFlotilla(globals(), async (flotilla) => {
        const { report, files } = await flotilla.bundles.apply(verified, {
          allowNewKey: options.newKey === true,
          onTenant: (t) => {
            if (!options.json) line(`  ${t.tenant}: ${t.status}${t.versionAfter ? ` (version ${t.versionAfter})` : ''}${t.backupId ? `, backup ${t.backupId.slice(0, 8)}` : ''}`);
          },
        });
        if (options.json) {
          // One JSON document on stdout, the report, whatever the outcome; the exit code says it failed.
          if (report.outcome === 'failed') process.exitCode = EXIT_CODE_BY_FAMILY.failed;
          return printJson({ ...report, reportFiles: files });
        }
        const { renderReport } = await import('../../services/bundle-report.js');
        process.stdout.write(`\n${renderReport(report)}`);
        line(`Report written to ${files.text} and ${files.json}${files.signature ? ` (signed with this site's key ${files.signedBy})` : ''}.`);
        const failed = report.tenants.find((t) => t.status === 'failed');
        if (report.outcome === 'failed') {
          throw new FlotillaError(
            'FLO_BUNDLE_FAILED',
            `The upgrade to ${report.product} ${report.version} failed${failed ? ` at tenant ${failed.tenant}` : ''}; no tenant was left half-upgraded.`,
            {
              hint: `Read the report (${files.text}), send it to your vendor's support, and restore with the commands it lists if you need the previous release back.`,
              meta: { report: files.json, tenant: failed?.tenant ?? null },
            },
          );
        }
      });
    });
  bundle
    .command('history')
    .description('list the bundles applied at this site, and when')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withFlotilla(globals(), async (flotilla) => {
        const history = await flotilla.bundles.history();
        if (options.json) return printJson(history.map(({ report: _report, ...install }) => install));
        if (history.length === 0) return line('No bundle has been applied at this site.');
        printTable(
          ['finished', 'product', 'version', 'outcome', 'by', 'bundle SHA-256'],
          history.map((i) => [i.finishedAt, i.product, i.version, i.outcome, i.installedBy, i.digest.slice(0, 16)]),
        );
      });
    });
}

async function verifyFile(file: string, pubkey: string, globals: GlobalOptions): Promise<VerifiedBundle> {
  const { verifyBundleFile } = await import('../../services/bundle-files.js');
  return verifyBundleFile(file, pubkey, await cliConfig(globals));
}

function summary(verified: VerifiedBundle) {
  const { manifest } = verified;
  return { valid: true, digest: verified.digest, sizeBytes: verified.sizeBytes, ...manifest };
}
