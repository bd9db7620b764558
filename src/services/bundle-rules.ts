import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import semver from 'semver';
import type { ResolvedConfig } from '../config/config.js';
import type { BundleInstall } from '../control/bundle-installs.js';
import type { BundleManifest } from '../core/bundle/manifest.js';
import { privateKeyFrom } from '../core/bundle/signing.js';
import { FlotillaError } from '../core/errors.js';

/**
 * The product a site runs: configured, else the one its first install
 * recorded, else (a first install) the bundle's own. Any other is refused.
 */
export function assertProduct(manifest: BundleManifest, configured: string | undefined, history: readonly BundleInstall[]): string {
  const product = configured ?? history[0]?.product ?? manifest.product;
  if (manifest.product !== product) {
    throw new FlotillaError('FLO_BUNDLE_OTHER_PRODUCT', `The bundle is for ${manifest.product}, and this site runs ${product}.`, {
      hint: 'Check that you were sent the bundle for your product. Nothing was changed.',
      meta: { bundle: manifest.product, site: product },
    });
  }
  return product;
}

/** The newest release installed (by version, not by date), of the product. */
export function installedRelease(history: readonly BundleInstall[], product: string): BundleInstall | undefined {
  return history
    .filter((i) => i.product === product && i.outcome === 'installed')
    .sort((a, b) => semver.compare(a.version, b.version))
    .at(-1);
}

/**
 * Anti-rollback and continuity: the bundle must be newer than what is
 * installed, upgrade from it, and be signed by the key earlier releases were
 * signed with (unless the administrator accepts a new key, announced by the vendor).
 */
export function assertNewer(manifest: BundleManifest, installed: BundleInstall | undefined, options: { allowNewKey?: boolean }): void {
  if (!installed) return;
  const meta = { installed: installed.version, bundle: manifest.version };
  if (semver.eq(manifest.version, installed.version)) {
    throw new FlotillaError('FLO_BUNDLE_INSTALLED', `${manifest.product} ${manifest.version} is already installed here (since ${installed.finishedAt}).`, {
      hint: 'Nothing to do. `flotilla bundle history` lists what was installed when.',
      meta,
    });
  }
  if (semver.lt(manifest.version, installed.version)) {
    throw new FlotillaError('FLO_BUNDLE_OLDER', `The bundle holds ${manifest.product} ${manifest.version}, older than the ${installed.version} installed here.`, {
      hint: 'A site never goes back to an older release this way. To undo an upgrade, restore the backups listed in its report.',
      meta,
    });
  }
  if (manifest.minFrom !== null && semver.lt(installed.version, manifest.minFrom)) {
    throw new FlotillaError('FLO_BUNDLE_TOO_NEW', `${manifest.product} ${manifest.version} upgrades from ${manifest.minFrom} or later, and this site has ${installed.version}.`, {
      hint: `Apply the releases in between first (at least ${manifest.minFrom}), then this one. Ask your vendor for them.`,
      meta: { ...meta, minFrom: manifest.minFrom },
    });
  }
  if (manifest.keyId !== installed.keyId && !options.allowNewKey) {
    throw new FlotillaError('FLO_BUNDLE_WRONG_KEY', `The bundle is signed with key ${manifest.keyId}, and the releases installed here so far with key ${installed.keyId}.`, {
      hint: 'Apply it only if your vendor told you they changed their signing key and sent you the new public key: then add --new-key. Otherwise do not install it.',
      meta: { keyId: manifest.keyId, trusted: installed.keyId },
    });
  }
}

/**
 * What the apply will write after the tenants are upgraded must be writable
 * before the first backup: the application folder (never one holding the
 * project's own files), the reports folder, the site's key.
 */
export async function assertSiteTargets(config: ResolvedConfig): Promise<void> {
  const { appDir, reportsDir, siteKey } = config.bundles;
  if (appDir !== undefined) {
    const own = [config.migrationsDir, config.backup.dir, reportsDir, siteKey, config.embedded.dataDir, config.configFile].filter((p): p is string => p !== undefined);
    const clash =
      resolve(appDir) === resolve(config.projectDir) || inside(config.projectDir, appDir)
        ? config.projectDir
        : own.find((p) => resolve(p) === resolve(appDir) || inside(p, appDir) || inside(appDir, p));
    if (clash) {
      throw new FlotillaError('FLO_CONFIG_INVALID', `bundles.appDir (${appDir}) would replace or hold ${clash}, which the site needs.`, {
        hint: 'Set bundles.appDir in flotilla.config.json to a folder of its own for the application, such as "app". Nothing was changed.',
        meta: { source: 'bundles.appDir', problems: [`${appDir} overlaps ${clash}`] },
      });
    }
    assertFolderPossible(appDir, 'bundles.appDir');
  }
  assertFolderPossible(reportsDir, 'bundles.reportsDir');
  if (existsSync(siteKey)) privateKeyFrom(await readFile(siteKey, 'utf8'), siteKey);
}

/** `path` is strictly inside `folder`. */
function inside(path: string, folder: string): boolean {
  const rel = relative(resolve(folder), resolve(path));
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) && !/^[A-Za-z]:/.test(rel);
}

/** The folder exists as a folder, or can be made: its nearest existing parent is a folder. */
function assertFolderPossible(path: string, key: string): void {
  let existing = resolve(path);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) {
    throw new FlotillaError('FLO_CONFIG_INVALID', `${key} (${path}) cannot be a folder: ${existing} is a file.`, {
      hint: `Set ${key} in flotilla.config.json to a folder path. Nothing was changed.`,
      meta: { source: key, problems: [`${existing} is a file`] },
    });
  }
}
