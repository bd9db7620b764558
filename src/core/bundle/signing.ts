import type { KeyObject } from 'node:crypto';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { sha256 } from '../checksum.js';
import { FlotillaError } from '../errors.js';

/** An Ed25519 key pair as PEM text: the private key PKCS#8, the public key SPKI. */
export interface KeyPairPem {
  readonly privateKey: string;
  readonly publicKey: string;
  readonly keyId: string;
}

export const PRIVATE_KEY_FILE = 'flotilla-signing.key';
export const PUBLIC_KEY_FILE = 'flotilla-signing.pub';

export function generateSigningKeys(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/** A short, stable name of a key pair: the first 16 hex digits of the SHA-256 of its public key's DER encoding. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return sha256(publicKey.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

/** Reads an Ed25519 private key from PEM text; `source` names the file in the error. */
export function privateKeyFrom(pem: string, source: string): KeyObject {
  return ed25519(() => createPrivateKey(pem), 'private', source);
}

/** Reads an Ed25519 public key from PEM text (a private key's public half is refused: give the .pub file). */
export function publicKeyFrom(pem: string, source: string): KeyObject {
  if (pem.includes('PRIVATE KEY')) {
    throw new FlotillaError('FLO_KEY_INVALID', `${source} is a private key, where the public key was asked for.`, {
      hint: 'Give the .pub file (flotilla-signing.pub). The private key stays with the vendor and never goes to a site.',
      meta: { file: source },
    });
  }
  return ed25519(() => createPublicKey(pem), 'public', source);
}

function ed25519(read: () => KeyObject, kind: 'private' | 'public', source: string): KeyObject {
  let key: KeyObject | undefined;
  try {
    key = read();
  } catch {
    key = undefined;
  }
  if (key?.asymmetricKeyType !== 'ed25519') {
    throw new FlotillaError('FLO_KEY_INVALID', `${source} is not an Ed25519 ${kind} key.`, {
      hint: `Give the ${kind === 'private' ? 'flotilla-signing.key' : 'flotilla-signing.pub'} file written by \`flotilla keys generate\`.`,
      meta: { file: source },
    });
  }
  return key;
}

export function signBytes(bytes: Uint8Array, privateKey: KeyObject): Buffer {
  return sign(null, bytes, privateKey);
}

export function signatureValid(bytes: Uint8Array, signature: Uint8Array, publicKey: KeyObject): boolean {
  try {
    return verify(null, bytes, publicKey, signature);
  } catch {
    return false;
  }
}
