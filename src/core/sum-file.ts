import { sha256 } from './checksum.js';
import { FlotillaError } from './errors.js';
import type { MigrationFile } from './migration-file.js';

export const SUM_FILE = 'flotilla.sum';

/**
 * `flotilla.sum`: a first line with one hash over every entry, then one line per
 * migration. Two branches that each add a migration both change the first line,
 * so git reports a conflict instead of merging two unrelated histories silently.
 */
export function renderSumFile(migrations: readonly MigrationFile[]): string {
  const lines = migrations.map((m) => `${m.path} h1:${m.checksum}`);
  return `${[`h1:${sha256(lines.join('\n'))}`, ...lines].join('\n')}\n`;
}

interface SumEntries {
  total: string;
  entries: Map<string, string>;
}

function parseSumFile(text: string): SumEntries {
  const [first = '', ...rest] = text.split('\n').filter((line) => line.trim() !== '');
  const entries = new Map<string, string>();
  for (const line of rest) {
    const at = line.lastIndexOf(' h1:');
    if (at > 0) entries.set(line.slice(0, at), line.slice(at + 4));
  }
  return { total: first.replace(/^h1:/, ''), entries };
}

/** Refuses a directory whose files differ from what `flotilla.sum` recorded. */
export function verifySumFile(text: string, migrations: readonly MigrationFile[], dir: string): void {
  if (text === renderSumFile(migrations)) return;
  const recorded = parseSumFile(text);
  const changed: string[] = [];
  const added: string[] = [];
  for (const m of migrations) {
    const sum = recorded.entries.get(m.path);
    if (sum === undefined) added.push(m.path);
    else if (sum !== m.checksum) changed.push(m.path);
  }
  const present = new Set(migrations.map((m) => m.path));
  const removed = [...recorded.entries.keys()].filter((path) => !present.has(path));
  const parts = [
    changed.length ? `changed: ${changed.join(', ')}` : '',
    added.length ? `not recorded: ${added.join(', ')}` : '',
    removed.length ? `recorded but missing: ${removed.join(', ')}` : '',
  ].filter(Boolean);
  throw new FlotillaError('FLO_SUM_MISMATCH', `${dir}/${SUM_FILE} does not match the migration files (${parts.join('; ') || 'the file itself was edited'}).`, {
    hint: 'If these changes are intended (a new migration, or a merge), run `flotilla migration hash` and commit flotilla.sum; if not, restore the files from version control.',
    meta: { changed, added, removed },
  });
}
