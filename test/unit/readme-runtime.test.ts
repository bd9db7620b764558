import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The runtime's README examples are the files in examples/runtime/, which the
 * runtime's tests run against real servers of each framework: here, each block
 * must be exactly its file.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const README = readFileSync(join(REPO, 'README.md'), 'utf8');

const EXAMPLES: Record<string, string> = {
  'runtime-express': 'examples/runtime/express.ts',
  'runtime-fastify': 'examples/runtime/fastify.ts',
  'runtime-hono': 'examples/runtime/hono.ts',
  'runtime-nest': 'examples/runtime/nest.ts',
  'runtime-kysely': 'examples/runtime/kysely.ts',
  'runtime-cache-and-files': 'examples/runtime/cache-and-files.ts',
};

function block(name: string): string {
  const match = new RegExp(`<!-- tested: ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\``).exec(README);
  if (!match) throw new Error(`README has no example marked "tested: ${name}"`);
  return match[1]!;
}

describe("the README's runtime examples", () => {
  for (const [name, file] of Object.entries(EXAMPLES)) {
    it(`shows ${file} as it is`, () => {
      expect(block(name)).toBe(readFileSync(join(REPO, file), 'utf8').trimEnd());
    });
  }
});
