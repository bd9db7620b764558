import { createPrivateKey, createHash, sign } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Header } from 'tar-stream';
import { extract, pack } from 'tar-stream';

/**
 * Crafting hostile bundles for tests: a genuine bundle unpacked in memory
 * (every tar header and body kept), changed, and packed again; its manifest
 * re-signed with a key of the test's choosing; and a decompression bomb that
 * is small on disk.
 */

/** A header as tar-stream reads and writes it (anything but the name may be left out). */
export type EntryHeader = Partial<Header> & Pick<Header, 'name'>;

export interface TarEntry {
  readonly header: EntryHeader;
  readonly body: Buffer;
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Every entry of a gzip'd tar, in order, headers as tar-stream reads them. */
export async function unpack(tgz: Buffer): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      entries.push({ header: { ...header }, body: Buffer.concat(chunks) });
      next();
    });
    stream.on('error', next);
  });
  reader.end(gunzipSync(tgz));
  await done;
  return entries;
}

/** Packs entries as given (names, types and link names untouched) into a gzip'd tar. */
export async function repack(entries: readonly TarEntry[]): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (header.type === undefined || header.type === 'file') tar.entry({ ...header, size: body.length }, body, done);
      else tar.entry({ ...header, size: 0 }, done);
    });
  }
  tar.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

/** A regular file entry. */
export function fileEntry(name: string, body: string | Buffer): TarEntry {
  return { header: { name, type: 'file', mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, body: Buffer.from(body) };
}

/** A symbolic (`symlink`) or hard (`link`) link entry. */
export function linkEntry(name: string, type: 'symlink' | 'link', target: string): TarEntry {
  return { header: { name, type, linkname: target, mode: 0o777, mtime: new Date(0), uid: 0, gid: 0 }, body: Buffer.alloc(0) };
}

export function entryBody(entries: readonly TarEntry[], name: string): Buffer {
  const entry = entries.find((e) => e.header.name === name);
  if (!entry) throw new Error(`no entry ${name} in [${entries.map((e) => e.header.name).join(', ')}]`);
  return entry.body;
}

/** The entries with one byte of `name` XOR-ed with `mask`: the byte at `index`, or the last byte of the first `at` found. */
export function flipByte(entries: readonly TarEntry[], name: string, where: { index?: number; at?: string }, mask = 0x01): TarEntry[] {
  const body = Buffer.from(entryBody(entries, name));
  const index = where.at === undefined ? (where.index ?? 0) : body.indexOf(where.at) + (body.includes(where.at) ? where.at.length - 1 : 0);
  if (index < 0 || index >= body.length) throw new Error(`cannot flip byte ${index} of ${name}`);
  body[index] = body[index]! ^ mask;
  return entries.map((e) => (e.header.name === name ? { header: e.header, body } : e));
}

export type Manifest = { files: { path: string; size: number; sha256: string }[] } & Record<string, unknown>;

/**
 * Replaces manifest.json by `change(manifest)` written as Flotilla writes it, and
 * manifest.sig by a valid Ed25519 signature of those exact bytes by `privateKeyPem`:
 * whatever is refused afterwards is refused for something else than the signature.
 */
export function resign(entries: readonly TarEntry[], privateKeyPem: string, change: (manifest: Manifest) => Manifest): TarEntry[] {
  const manifest = change(JSON.parse(entryBody(entries, 'manifest.json').toString('utf8')) as Manifest);
  const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  const signature = sign(null, bytes, createPrivateKey(privateKeyPem));
  return entries.map((e) => (e.header.name === 'manifest.json' ? { header: e.header, body: bytes } : e.header.name === 'manifest.sig' ? { header: e.header, body: signature } : e));
}

/** Adds `added` to the manifest's file list, as the vendor would have listed them. */
export const listing =
  (...added: TarEntry[]) =>
  (manifest: Manifest): Manifest => ({
    ...manifest,
    files: [...manifest.files, ...added.map((e) => ({ path: e.header.name, size: e.body.length, sha256: sha256(e.body) }))].sort((a, b) => (a.path < b.path ? -1 : 1)),
  });

/** The raw names and type flags in a gzip'd tar's headers, read from the bytes (name field, ustar prefix), not through a tar library. */
export interface RawHeader {
  readonly name: string;
  readonly typeflag: string;
  readonly linkname: string;
  readonly size: number;
}

export function rawHeaders(tgz: Buffer): RawHeader[] {
  const tar = gunzipSync(tgz);
  const text = (from: number, length: number) => {
    const field = tar.subarray(from, from + length);
    const end = field.indexOf(0);
    return field.subarray(0, end < 0 ? length : end).toString('utf8');
  };
  const headers: RawHeader[] = [];
  for (let at = 0; at + 512 <= tar.length && tar[at] !== 0; ) {
    const prefix = text(at + 345, 155);
    const name = text(at, 100);
    const size = tar[at + 124]! & 0x80 ? tar.subarray(at + 125, at + 136).reduce((n, b) => n * 256 + b, 0) : Number.parseInt(text(at + 124, 12).trim() || '0', 8);
    headers.push({ name: prefix ? `${prefix}/${name}` : name, typeflag: String.fromCharCode(tar[at + 156]!), linkname: text(at + 157, 100), size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return headers;
}

/**
 * A 512-byte ustar header for a regular file, written by hand: `size` above
 * 8 GiB - 1 (the largest 11 octal digits hold) goes in base 256, as GNU tar writes it.
 */
export function ustarHeader(name: string, size: number, mode = 0o644): Buffer {
  const block = Buffer.alloc(512);
  const octal = (value: number, at: number, width: number) => block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, 'ascii');
  block.write(name, 0, 100, 'utf8');
  octal(mode, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  if (size > 0o77777777777) {
    block[124] = 0x80;
    for (let i = 11, rest = size; i > 0; i--, rest = Math.floor(rest / 256)) block[124 + i] = rest % 256;
  } else octal(size, 124, 12);
  octal(0, 136, 12);
  block[156] = '0'.charCodeAt(0);
  block.write('ustar\u000000', 257, 'ascii');
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

/** The block of zeros the bomb repeats, and the SHA-256 of 640 of them (10 GiB of zeros; computed once, 7 s, with createHash over the block 640 times). */
export const BOMB_BLOCK = 16 * 1024 ** 2;
export const BOMB_MEMBERS = 640;
export const TEN_GIB_OF_ZEROS_SHA256 = '732377e7f4a2abdc13ddfa1eb4c9c497fd2a2b294674d056cf51581b47dd586d';

export interface Bomb {
  readonly bytes: Buffer;
  /** The size the tar header declares for the one big file. */
  readonly declared: number;
  /** Bytes it inflates to: the head, every zero member, the end of the archive. */
  readonly unpacked: number;
  readonly head: Buffer;
  readonly member: Buffer;
  readonly tail: Buffer;
}

/**
 * A decompression bomb shaped as a bundle: a first gzip member holding the given
 * entries (a signed manifest, say) and the header of `name` declaring
 * BOMB_MEMBERS × BOMB_BLOCK bytes; then one gzip member of BOMB_BLOCK zeros
 * (about 16 KB), repeated BOMB_MEMBERS times; then the end of the archive.
 * Gunzip reads concatenated members as one stream: a valid tar of 10 GiB.
 */
export async function decompressionBomb(name: string, entries: readonly TarEntry[]): Promise<Bomb> {
  const declared = BOMB_MEMBERS * BOMB_BLOCK;
  const leading = gunzipSync(await repack(entries));
  // Everything before the two zero blocks that end the archive tar-stream wrote.
  const end = rawHeaders(gzipSync(leading)).reduce((at, h) => at + 512 + Math.ceil(h.size / 512) * 512, 0);
  const head = gzipSync(Buffer.concat([leading.subarray(0, end), ustarHeader(name, declared)]));
  const member = gzipSync(Buffer.alloc(BOMB_BLOCK), { level: 9 });
  const tail = gzipSync(Buffer.alloc(1024));
  const bytes = Buffer.concat([head, ...Array.from({ length: BOMB_MEMBERS }, () => member), tail]);
  return { bytes, declared, unpacked: end + 512 + declared + 1024, head, member, tail };
}
