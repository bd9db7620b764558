import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const README = readFileSync(join(REPO, 'README.md'), 'utf8');

/** The code block that follows `<!-- tested: <name> -->` in the README. */
export function readmeExample(name: string): string {
  const match = new RegExp(`<!-- tested: ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\``).exec(README);
  if (!match) throw new Error(`README has no example marked "tested: ${name}"`);
  return match[1]!;
}
