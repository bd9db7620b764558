/**
 * flotilla/runtime/storage: each tenant's files under `<root>/<slug>/`, and no
 * path a request can name leads out of them: not `..`, not an absolute path,
 * not a symbolic link (see TenantFiles).
 */
import { constants, existsSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, mkdir, open, readdir, rmdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FlotillaError } from '../core/errors.js';
import { assertSlugReference } from '../core/slug.js';
import { currentTenant } from './context.js';

const DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
// O_NONBLOCK: a FIFO planted in the area answers at once instead of holding one of libuv's few threads forever.
const READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * On Linux, `/proc/self/fd/<dir>/<name>` names `<name>` inside the directory
 * already open as `<dir>`, as openat(2) does: walking a path one opened
 * directory at a time, nothing renamed or swapped in meanwhile can redirect
 * it. Elsewhere each step is opened by its full path, and a directory swapped
 * for a link between two steps could still redirect the next one.
 */
const FD_PATHS = existsSync('/proc/self/fd');

export type StorageReason = 'parent' | 'absolute' | 'nul' | 'backslash' | 'symlink';

/** The current tenant's file area. Every method takes a path relative to it, `/`-separated. */
export interface TenantFiles {
  /** The absolute path of `relative`, checked now (an app that hands it to another library trusts nothing to change it after). */
  path(relative: string): Promise<string>;
  readFile(relative: string): Promise<Buffer>;
  readFile(relative: string, encoding: BufferEncoding): Promise<string>;
  /** Writes the file (mode 0600), creating the area and parent directories (mode 0700) as needed. */
  writeFile(relative: string, data: string | Uint8Array): Promise<void>;
  /** The names in a directory of the area (the area itself by default), sorted; [] when the area is not created yet. */
  list(relative?: string): Promise<string[]>;
  /** Removes a file, or a directory with everything in it; false when there was nothing to remove. */
  remove(relative: string): Promise<boolean>;
  exists(relative: string): Promise<boolean>;
}

/**
 * A file area per tenant under `root`: each call works in the area of the
 * tenant in scope when it is made (FLO_NO_TENANT_SCOPE outside one).
 *
 * Refused with FLO_PATH_ESCAPE (HTTP 400): a `..` that climbs above the area
 * (`a/../b` is `b`, allowed), an absolute path, a NUL byte, a backslash (a
 * literal name character on POSIX, a separator on Windows: refused so a name
 * means one thing everywhere), and any symbolic link met on the way, whether
 * it points out of the area or inside it: the helper never makes one, so one
 * found there was planted, and following none is what makes the walk safe.
 * Names are taken literally: `%2e%2e` is a name, not `..`. The root itself may
 * be reached through links the operator set up.
 */
export function tenantStorage(root: string): TenantFiles {
  const base = resolve(root);

  const files: TenantFiles = {
    async path(relative) {
      const slug = tenantSlug();
      const parts = segments(relative, slug);
      // Checks what exists now: a link on the way, or at the end, is refused.
      await tidy(relative, async () => {
        const root = await openArea(base, slug, false);
        const parent = root && (await walk(root, parts.slice(0, -1), { create: false, relative, slug }));
        if (!parent) return;
        await closeAfter(parent.handle, async () => {
          const last = parts.at(-1);
          if (last !== undefined && (await lstat(parent.at(last)).catch(absent))?.isSymbolicLink()) throw refusal(relative, slug, 'symlink');
        });
      });
      return join(base, slug, ...parts);
    },
    readFile: (async (relative: string, encoding?: BufferEncoding) =>
      inFile(base, relative, false, async (parent, name, slug) => {
        const handle = await openNoFollow(parent, name, READ, { relative, slug });
        return closeAfter(handle, () => handle.readFile(encoding ? { encoding } : {}));
      })) as TenantFiles['readFile'],
    writeFile: (relative, data) =>
      inFile(base, relative, true, async (parent, name, slug) => {
        const handle = await openNoFollow(parent, name, WRITE, { relative, slug }, 0o600);
        await closeAfter(handle, () => handle.writeFile(data));
      }),
    async list(relative = '') {
      const slug = tenantSlug();
      const parts = segments(relative, slug);
      return tidy(relative, async () => {
        const root = await openArea(base, slug, false);
        if (!root && parts.length === 0) return [];
        if (!root) throw missing();
        const dir = await walk(root, parts, { create: false, relative, slug, required: true });
        return closeAfter(dir!.handle, async () => (await readdir(dir!.at(''))).sort());
      });
    },
    remove: (relative) =>
      inFile(base, relative, false, async (parent, name, slug) => {
        const entry = await lstat(parent.at(name)).catch(absent);
        if (!entry) return false;
        if (entry.isDirectory()) await removeTree(parent, name, { relative, slug });
        else await unlink(parent.at(name));
        return true;
      }).catch((error) => (isCode(error, 'ENOENT') ? false : Promise.reject(error))),
    async exists(relative) {
      return inFile(base, relative, false, async (parent, name, slug) => {
        const entry = await lstat(parent.at(name)).catch(absent);
        if (entry?.isSymbolicLink()) throw refusal(relative, slug, 'symlink');
        return entry !== undefined;
      }).catch((error) => (isCode(error, 'ENOENT') ? false : Promise.reject(error)));
    },
  };
  return files;
}

/** The tenant in scope's slug, checked again: it names a directory. */
function tenantSlug(): string {
  const slug = currentTenant().slug;
  assertSlugReference(slug);
  return slug;
}

/** A directory opened without following a link, and how to name an entry in it. */
interface Dir {
  readonly handle: FileHandle;
  /** Its path, where names are joined to it ('' where they are named through the descriptor). */
  readonly path: string;
  /** `name` inside this directory ('' for the directory itself). */
  at(name: string): string;
}

function dirOf(handle: FileHandle, path: string): Dir {
  if (FD_PATHS) return { handle, path: '', at: (name) => `/proc/self/fd/${handle.fd}${name ? `/${name}` : ''}` };
  return { handle, path, at: (name) => (name ? join(path, name) : path) };
}

interface Where {
  readonly relative: string;
  readonly slug: string;
}

/** Runs `fn` on the parent directory of `relative`'s last name; the area's own root is no file. */
async function inFile<T>(base: string, relative: string, create: boolean, fn: (parent: Dir, name: string, slug: string) => Promise<T>): Promise<T> {
  const slug = tenantSlug();
  const parts = segments(relative, slug);
  const name = parts.pop();
  if (name === undefined) {
    throw new FlotillaError('FLO_USAGE', `"${relative}" names tenant ${slug}'s whole file area, not a file in it.`, {
      hint: 'Name a file inside the area, such as "uploads/logo.png".',
      meta: { tenant: slug, path: relative.slice(0, 200) },
    });
  }
  return tidy(relative, async () => {
    const root = await openArea(base, slug, create);
    if (!root) throw missing();
    const parent = await walk(root, parts, { create, relative, slug, required: true });
    return closeAfter(parent!.handle, () => fn(parent!, name, slug));
  });
}

/** The area's directory, opened; created (mode 0700, with the root) when `create`, else undefined when missing. */
async function openArea(base: string, slug: string, create: boolean): Promise<Dir | undefined> {
  if (create) await mkdir(base, { recursive: true, mode: 0o700 });
  const root = await open(base, constants.O_RDONLY | constants.O_DIRECTORY).catch((error) => (!create && isCode(error, 'ENOENT') ? undefined : Promise.reject(error)));
  return root && walk(dirOf(root, base), [slug], { create, relative: '', slug });
}

/**
 * Opens `parts` one directory at a time from `from` (which it closes), never
 * following a link: the directory reached, or undefined when a part is missing
 * and not `required` (with `required`, the ENOENT is thrown).
 */
async function walk(from: Dir, parts: readonly string[], options: Where & { create: boolean; required?: boolean }): Promise<Dir | undefined> {
  let dir = from;
  try {
    for (const part of parts) {
      if (options.create) await mkdir(dir.at(part), 0o700).catch((error) => (isCode(error, 'EEXIST') ? undefined : Promise.reject(error)));
      const handle = await openNoFollow(dir, part, DIRECTORY, options).catch((error) => (!options.required && isCode(error, 'ENOENT') ? undefined : Promise.reject(error)));
      const path = dir.path && join(dir.path, part);
      await dir.handle.close();
      if (!handle) return undefined;
      dir = dirOf(handle, path);
    }
    return dir;
  } catch (error) {
    await dir.handle.close().catch(() => undefined);
    throw error;
  }
}

/** Opens `name` in `dir` without following a link: a link there is FLO_PATH_ESCAPE. */
async function openNoFollow(dir: Dir, name: string, flags: number, where: Where, mode?: number): Promise<FileHandle> {
  try {
    return await open(dir.at(name), flags, mode);
  } catch (error) {
    // O_NOFOLLOW answers ELOOP for a link, or ENOTDIR with O_DIRECTORY: tell a link from a file.
    if ((isCode(error, 'ELOOP') || isCode(error, 'ENOTDIR')) && (await lstat(dir.at(name)).catch(absent))?.isSymbolicLink()) {
      throw refusal(where.relative, where.slug, 'symlink');
    }
    throw error;
  }
}

/** Removes directory `name` of `parent` and what it holds, walking it by opened directories: a link inside is removed, never followed. */
async function removeTree(parent: Dir, name: string, where: Where): Promise<void> {
  const handle = await openNoFollow(parent, name, DIRECTORY, where);
  const dir = dirOf(handle, parent.path && join(parent.path, name));
  await closeAfter(handle, async () => {
    for (const entry of await readdir(dir.at(''), { withFileTypes: true })) {
      if (entry.isDirectory()) await removeTree(dir, entry.name, where);
      else await unlink(dir.at(entry.name));
    }
  });
  await rmdir(parent.at(name));
}

/** The names of `relative` after `.` and `..`, or FLO_PATH_ESCAPE. */
function segments(relative: string, slug: string): string[] {
  if (relative.includes('\0')) throw refusal(relative, slug, 'nul');
  if (relative.includes('\\')) throw refusal(relative, slug, 'backslash');
  if (relative.startsWith('/')) throw refusal(relative, slug, 'absolute');
  const parts: string[] = [];
  for (const part of relative.split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') parts.push(part);
    else if (parts.pop() === undefined) throw refusal(relative, slug, 'parent');
  }
  return parts;
}

const REASONS: Readonly<Record<StorageReason, string>> = {
  parent: 'its ".." climbs above the area',
  absolute: 'it is absolute',
  nul: 'it holds a NUL byte',
  backslash: 'it holds a backslash',
  symlink: 'it goes through a symbolic link, which a tenant file area never follows',
};

function refusal(relative: string, slug: string, reason: StorageReason): FlotillaError {
  const shown = relative.replaceAll('\0', '\\0').slice(0, 200);
  return new FlotillaError('FLO_PATH_ESCAPE', `The path ${JSON.stringify(shown)} is refused in tenant ${slug}'s file area: ${REASONS[reason]}.`, {
    hint: 'Name files relative to the tenant area with "/" between names, such as "uploads/2024/logo.png".',
    meta: { tenant: slug, path: shown, reason },
  });
}

/** Node's errors name the path the tenant gave, not the descriptor path walked. */
async function tidy<T>(relative: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof FlotillaError || typeof (error as { code?: unknown })?.code !== 'string') throw error;
    const { code, errno, syscall } = error as NodeJS.ErrnoException;
    throw Object.assign(new Error(`${code}: ${syscall ?? 'access'} '${relative}'`, { cause: error }), { code, errno, syscall, path: relative });
  }
}

async function closeAfter<T>(handle: FileHandle, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    await handle.close();
  }
}

function missing(): Error {
  return Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'open' });
}

function absent(error: unknown): undefined {
  if (isCode(error, 'ENOENT')) return undefined;
  throw error;
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
