#!/usr/bin/env node
// The CLI is written in TypeScript; tsx compiles it on the fly so `npx flotilla` needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv);
await new Promise((resolve) => process.stdout.write('', resolve));
process.exit(code);
