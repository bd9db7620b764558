#!/usr/bin/env node
// The compiled CLI (`npm run build`, run by `npm ci` through `prepare`): plain Node, no TypeScript at run time.
const { main } = await import('../dist/cli/main.js');
const code = await main(process.argv);
await new Promise((resolve) => process.stdout.write('', resolve));
process.exit(code);
