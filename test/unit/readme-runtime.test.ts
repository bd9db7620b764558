import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, readmeExample } from '../support/readme.js';

/**
 * The runtime's README examples are the files in examples/runtime/, which the
 * runtime's tests run against real servers of each framework: here, each block
 * must be exactly its file.
 */
const EXAMPLES: Record<string, string> = {
  'runtime-express': 'examples/runtime/express.ts',
  'runtime-fastify': 'examples/runtime/fastify.ts',
  'runtime-hono': 'examples/runtime/hono.ts',
  'runtime-nest': 'examples/runtime/nest.ts',
  'runtime-kysely': 'examples/runtime/kysely.ts',
  'runtime-cache-and-files': 'examples/runtime/cache-and-files.ts',
};

describe("the README's runtime examples", () => {
  for (const [name, file] of Object.entries(EXAMPLES)) {
    it(`shows ${file} as it is`, () => {
      expect(readmeExample(name)).toBe(readFileSync(join(REPO, file), 'utf8').trimEnd());
    });
  }
});
