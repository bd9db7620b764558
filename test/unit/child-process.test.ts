import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { processesMentioning, until } from '../support/kill.js';

const SLEEPER = fileURLToPath(new URL('../support/guarded-sleeper.ts', import.meta.url));

describe('child tools die with the command that started them', () => {
  it.each(['setpriv', 'portable', 'group'])('when it is killed with SIGKILL (%s)', async (mode) => {
    if (mode === 'setpriv' && process.platform !== 'linux') return;
    const marker = `guard-${randomBytes(6).toString('hex')}`;
    const parent = spawn(process.execPath, ['--import', 'tsx', SLEEPER, marker, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    parent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await until(async () => output.includes('started') && (await processesMentioning(marker)).length > 0, 'the tool running');
    parent.kill('SIGKILL');
    await until(async () => (await processesMentioning(marker)).length === 0, 'the tool gone with its parent', 15_000);
    expect(await processesMentioning(marker)).toEqual([]);
  });
});
