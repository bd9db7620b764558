import { describe, expect, it } from 'vitest';
import { assignWaves, failureBudget } from '../../src/core/waves.js';

const tenants = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const waves = (options: Parameters<typeof assignWaves>[1]) =>
  assignWaves(tenants, options)
    .map((p) => `${p.tenant}${p.wave}`)
    .join(' ');

describe('waves', () => {
  it('puts the canary first, as a count, a share (rounded up, at least one) or slugs, then the rest in waves', () => {
    expect(waves({})).toBe('a1 b1 c1 d1 e1 f1 g1');
    expect(waves({ canary: '2', waveSize: 2 })).toBe('a0 b0 c1 d1 e2 f2 g3');
    expect(waves({ canary: '10%' })).toBe('a0 b1 c1 d1 e1 f1 g1');
    expect(waves({ canary: '30%', waveSize: 3 })).toBe('a0 b0 c0 d1 e1 f1 g2');
    expect(waves({ canary: 'f,b' })).toBe('b0 f0 a1 c1 d1 e1 g1');
  });

  it('refuses canary slugs outside the selection and shares over 100 %', () => {
    expect(() => waves({ canary: 'a,zed' })).toThrow(expect.objectContaining({ code: 'FLO_USAGE', message: expect.stringContaining('zed') }));
    expect(() => waves({ canary: '150%' })).toThrow(expect.objectContaining({ code: 'FLO_USAGE', message: 'canary 150% is more than all the tenants.' }));
  });

  it('turns --max-failures into a number of tenants', () => {
    expect(failureBudget(undefined, 50)).toBeUndefined();
    expect(failureBudget('2', 50)).toBe(2);
    expect(failureBudget('5%', 50)).toBe(2);
    expect(failureBudget('0%', 50)).toBe(0);
    expect(() => failureBudget('lots', 50)).toThrow(expect.objectContaining({ code: 'FLO_USAGE' }));
    expect(() => failureBudget('101%', 50)).toThrow(expect.objectContaining({ code: 'FLO_USAGE', message: 'maxFailures 101% is more than all the tenants.' }));
  });
});
