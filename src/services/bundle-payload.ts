import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Installs the files of a verified bundle under `folder/` (the application,
 * the migrations) into `target`: written into a new folder beside it, then
 * swapped in by renames (the folder it replaces kept as
 * `.<name>.previous-<time>` until the next install), so it is never half old, half new.
 */
export async function installFolder(
  files: ReadonlyMap<string, Buffer>,
  folder: string,
  target: string,
  executables: ReadonlySet<string> = new Set(),
): Promise<{ files: number; previous: string | null }> {
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(join(parent, `.${basename(target)}.incoming-`));
  await chmod(staging, 0o755);
  try {
    return await swapIn(files, folder, target, staging, executables);
  } catch (error) {
    // Whatever failed, nothing half-written is left beside the target.
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

async function swapIn(
  files: ReadonlyMap<string, Buffer>,
  folder: string,
  target: string,
  staging: string,
  executables: ReadonlySet<string>,
): Promise<{ files: number; previous: string | null }> {
  const parent = dirname(target);
  const prefix = `${folder}/`;
  let count = 0;
  for (const [path, bytes] of files) {
    if (!path.startsWith(prefix)) continue;
    // Paths were checked when the bundle was verified: relative, no "..", plain names.
    const file = join(staging, ...path.slice(prefix.length).split('/'));
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes, { flag: 'wx', mode: 0o644 });
    if (executables.has(path)) await chmod(file, 0o755);
    count++;
  }
  let previous: string | null = null;
  if (existsSync(target)) {
    previous = join(parent, `.${basename(target)}.previous-${new Date().toISOString().replace(/[-:.]/g, '')}`);
    await rename(target, previous);
  }
  try {
    await rename(staging, target);
  } catch (error) {
    if (previous) await rename(previous, target);
    throw error;
  }
  // Only the folder just replaced is kept: older ones would pile up release after release.
  const older = (await readdir(parent)).filter((name) => name.startsWith(`.${basename(target)}.previous-`) && join(parent, name) !== previous);
  for (const name of older) await rm(join(parent, name), { recursive: true, force: true });
  return { files: count, previous };
}
