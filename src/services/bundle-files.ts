import { constants } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ResolvedConfig } from '../config/config.js';
import { DEFAULT_LIMITS, tooLarge } from '../core/bundle/archive.js';
import { formatBytes } from '../core/bytes.js';
import { generateSigningKeys, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, publicKeyFrom } from '../core/bundle/signing.js';
import type { VerifiedBundle } from '../core/bundle/verify.js';
import { verifyBundle } from '../core/bundle/verify.js';
import { FlotillaError } from '../core/errors.js';
import { flotillaVersion } from './flotilla-version.js';

/**
 * Writes a new Ed25519 key pair into `dir`: the private key readable by its
 * owner only (0600), the public key beside it. Refuses to replace either file.
 */
export async function generateKeyFiles(dir: string): Promise<{ privateKey: string; publicKey: string; keyId: string }> {
  const privateKey = join(dir, PRIVATE_KEY_FILE);
  const publicKey = join(dir, PUBLIC_KEY_FILE);
  for (const file of [privateKey, publicKey]) {
    if (
      await stat(file).then(
        () => true,
        () => false,
      )
    ) {
      throw new FlotillaError('FLO_KEY_EXISTS', `${file} already exists, and a signing key is never overwritten.`, {
        hint: 'Keep using the existing key (sites trust it), or give --out another directory for a new one.',
        meta: { file },
      });
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = generateSigningKeys();
  // Created exclusively with its mode set at once: the private key is never readable by others, not even for an instant.
  await writeExclusive(privateKey, keys.privateKey, 0o600);
  await writeExclusive(publicKey, keys.publicKey, 0o644);
  return { privateKey, publicKey, keyId: keys.keyId };
}

async function writeExclusive(file: string, text: string, mode: number): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

/** Reads a bundle file and verifies it with the public key file, offline; nothing is written anywhere. */
export async function verifyBundleFile(file: string, publicKeyFile: string, config: Pick<ResolvedConfig, 'bundles'>, cwd = process.cwd()): Promise<VerifiedBundle> {
  const keyPath = resolve(cwd, publicKeyFile);
  const pem = await readFile(keyPath, 'utf8').catch(() => {
    throw new FlotillaError('FLO_KEY_INVALID', `The public key ${publicKeyFile} cannot be read.`, {
      hint: 'Give the flotilla-signing.pub file your vendor sent with the software.',
      meta: { file: publicKeyFile },
    });
  });
  const key = publicKeyFrom(pem, publicKeyFile);
  const limits = { ...DEFAULT_LIMITS, maxUnpackedBytes: config.bundles.maxUnpackedBytes };
  // One open file: its size and its bytes are those of the same file, whatever replaces the path meanwhile.
  const handle = await open(resolve(cwd, file), 'r').catch(() => undefined);
  try {
    const info = await handle?.stat();
    if (!handle || !info?.isFile()) {
      throw new FlotillaError('FLO_USAGE', `The bundle ${file} is not a file that can be read.`, {
        hint: 'Give the path of the .flotilla.tgz file your vendor sent.',
        meta: { file },
      });
    }
    if (info.size > limits.maxUnpackedBytes) throw tooLarge(`${formatBytes(info.size)} compressed, more than the largest bundle accepted`);
    return await verifyBundle(await handle.readFile(), key, { flotillaVersion: flotillaVersion(), limits });
  } finally {
    await handle?.close();
  }
}
