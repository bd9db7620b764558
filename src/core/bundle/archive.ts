import { createGunzip, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import { formatBytes } from '../bytes.js';
import { FlotillaError } from '../errors.js';

/** One file of a bundle: its path inside the archive (always `/`-separated, relative) and its bytes. */
export interface ArchiveFile {
  readonly path: string;
  readonly bytes: Buffer;
  /** Unix permission bits; 0644 unless the file is executable (0755). */
  readonly executable?: boolean;
}

export interface ArchiveLimits {
  /** The archive unpacked, every file and header together, may not exceed this (a decompression bomb stops here). */
  readonly maxUnpackedBytes: number;
  readonly maxFiles: number;
}

export const DEFAULT_LIMITS: ArchiveLimits = { maxUnpackedBytes: 1024 ** 3, maxFiles: 100_000 };

const SEGMENT = /^[\w.+@=-]+$/;

/**
 * Packs files into a gzip'd tar whose bytes depend only on the files and the
 * time given: entries sorted by path, owner 0, no user or group names, one
 * modification time, fixed modes, gzip with no name and no time in its header.
 */
export async function packArchive(files: readonly ArchiveFile[], mtime: Date): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  const ordered = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const file of ordered) {
    assertSafePath(file.path);
    await new Promise<void>((resolve, reject) =>
      tar.entry(
        { name: file.path, size: file.bytes.length, mode: file.executable ? 0o755 : 0o644, mtime, uid: 0, gid: 0, uname: '', gname: '', type: 'file' },
        file.bytes,
        (error) => (error ? reject(error) : resolve()),
      ),
    );
  }
  tar.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}

/**
 * Reads a bundle's archive into memory without writing anything anywhere:
 * only regular files, each path relative and inside the archive, each path
 * once, and the whole bounded by `limits` (decompression stops at the bound).
 */
export async function readArchive(bytes: Buffer, limits: ArchiveLimits = DEFAULT_LIMITS): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const reader = extract();
  const gunzip = createGunzip();
  let failure: FlotillaError | undefined;
  let unpacked = 0;
  // Whatever fails first is the answer; both streams stop there.
  const fail = (error: unknown) => {
    failure ??= error instanceof FlotillaError ? error : unreadable(`it is not a gzip-compressed tar archive (${String((error as Error)?.message ?? error)})`);
    gunzip.destroy();
    reader.destroy();
  };
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', () => (failure ? reject(failure) : resolve()));
    reader.on('close', () => failure && reject(failure));
    reader.on('error', (error: unknown) => {
      fail(error);
      reject(failure);
    });
    gunzip.on('error', (error: unknown) => {
      fail(error);
      reject(failure);
    });
  });
  reader.on('entry', (header, stream, next) => {
    // The entry's body is drained whatever happens: a refused entry must not leave a stream erroring with no listener.
    stream.on('error', () => undefined);
    try {
      assertEntry(header.name, header.type ?? 'file', header.linkname ?? null);
      if (files.has(header.name)) throw unsafe(header.name, 'appears twice in the archive', 'duplicate');
      if (files.size >= limits.maxFiles) throw tooLarge(`more than ${limits.maxFiles} files`);
      // A size declared beyond the bound is refused from its header, before its body is unpacked.
      if ((header.size ?? 0) > limits.maxUnpackedBytes) throw tooLarge(`a file of ${formatBytes(header.size ?? 0)}, more than ${formatBytes(limits.maxUnpackedBytes)}`);
    } catch (error) {
      stream.resume();
      fail(error);
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      files.set(header.name, Buffer.concat(chunks));
      next();
    });
  });
  // Unpacked as a stream and counted: decompression stops at the bound, a bomb never fills memory.
  gunzip.on('data', (chunk: Buffer) => {
    unpacked += chunk.length;
    if (unpacked > limits.maxUnpackedBytes) return fail(tooLarge(`more than ${formatBytes(limits.maxUnpackedBytes)} once unpacked`));
    if (!reader.write(chunk)) gunzip.pause();
  });
  reader.on('drain', () => gunzip.resume());
  gunzip.on('end', () => (reader as unknown as { end(): void }).end());
  gunzip.end(bytes);
  await done;
  return files;
}

/** Refuses any entry but a regular file at a plain relative path. */
function assertEntry(name: string, type: string, linkname: string | null): void {
  if (type !== 'file' && type !== 'contiguous-file') {
    const what =
      type === 'symlink' || type === 'link' ? `a ${type === 'link' ? 'hard' : 'symbolic'} link${linkname ? ` to ${JSON.stringify(linkname.slice(0, 200))}` : ''}` : `a ${type}`;
    throw unsafe(name, `is ${what}, and a bundle holds regular files only`, type);
  }
  assertSafePath(name);
}

/** A path that stays inside the directory it is extracted to on every system: relative, no `..`, no drive, no backslash. */
export function assertSafePath(path: string): void {
  const segments = path.split('/');
  if (path.length === 0 || path.length > 255 || path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..' || !SEGMENT.test(s))) {
    const reason = path.startsWith('/') ? 'is an absolute path' : segments.includes('..') ? 'climbs out with ".."' : 'is not a plain relative path';
    throw unsafe(path, `${reason}, which could write outside the directory it is unpacked into`, 'path');
  }
}

function unsafe(entry: string, reason: string, kind: string): FlotillaError {
  return new FlotillaError('FLO_BUNDLE_UNSAFE_ENTRY', `The bundle is refused: its entry ${JSON.stringify(entry.slice(0, 200))} ${reason}.`, {
    hint: 'Do not install it. Ask your vendor for a new copy of the bundle; a bundle built by `flotilla bundle build` never holds such an entry.',
    meta: { entry: entry.slice(0, 200), kind },
  });
}

export function tooLarge(what: string): FlotillaError {
  return new FlotillaError('FLO_BUNDLE_TOO_LARGE', `The bundle is refused: it holds ${what}.`, {
    hint: 'Do not install it. Ask your vendor how large this release is: only if they confirm its size, raise bundles.maxUnpackedBytes in flotilla.config.json and apply it again.',
    meta: { limit: what },
  });
}

export function unreadable(reason: string): FlotillaError {
  return new FlotillaError('FLO_BUNDLE_UNREADABLE', `The bundle cannot be read: ${reason}.`, {
    hint: 'The file may be incomplete or damaged: copy it again from your vendor, and check that its size matches theirs.',
    meta: { reason },
  });
}
