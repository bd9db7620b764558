import { z } from 'zod';
import { FlotillaError } from '../core/errors.js';
import { assertSlugReference } from '../core/slug.js';
import { SERVER_NAME_PATTERN } from '../core/tenant.js';

/**
 * Every value the command line takes is parsed and bounded here, before anything
 * runs: no flag reaches a query, a file path or a number unchecked.
 */

const HUNDRED_YEARS_MS = 100 * 365.25 * 86_400_000;
const UNITS = { min: 60_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** A whole number within bounds, written in digits only. */
export function wholeNumber(min: number, max: number) {
  return z
    .string()
    .regex(/^\d{1,9}$/, `a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `at least ${min}`).max(max, `at most ${max}`));
}

/** `2h`, `30min`, `3d`, `1w` (up to a hundred years), or an ISO date or time: the instant it names. */
export function instant(now: () => Date = () => new Date()) {
  return z.string().transform((text, ctx) => {
    const relative = /^(\d{1,15})\s*(min|m|h|d|w)$/.exec(text.trim());
    if (relative) {
      const ms = Number(relative[1]) * UNITS[relative[2] as keyof typeof UNITS];
      if (ms <= HUNDRED_YEARS_MS) return new Date(now().getTime() - ms);
      ctx.addIssue({ code: 'custom', message: 'a duration of at most a hundred years' });
      return z.NEVER;
    }
    const date = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim()) ? new Date(text.trim()) : new Date(Number.NaN);
    if (!Number.isNaN(date.getTime()) && date.getUTCFullYear() >= 1970 && date.getUTCFullYear() <= 9999) return date;
    ctx.addIssue({ code: 'custom', message: 'a date (2026-11-21 or 2026-11-21T08:00:00Z) or a duration such as 30min, 2h, 3d, 1w' });
    return z.NEVER;
  });
}

/** A migration version: digits, as in the file names. */
export const version = z.string().regex(/^\d{1,40}$/, 'a migration version: digits, as in the file names (0003 for 0003_add_loans.sql)');

/** `3` or `5%`. */
export const countOrShare = z.string().regex(/^(\d{1,6}|\d{1,3}(\.\d{1,3})?%)$/, 'a count (3) or a share (5%)');

/** A rollout's or a backup's id, or the first characters of it (at least 8). */
export const idPrefix = z.string().regex(/^[0-9a-fA-F-]{8,36}$/, 'an id, or its first 8 characters or more (hexadecimal)');

export const serverName = z.string().regex(SERVER_NAME_PATTERN, 'a server name: a lowercase letter, then lowercase letters, digits or "-"');

/** A tag: a short label of letters, digits, "-", "_" or ".". */
export const tag = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a tag: up to 64 letters, digits, ".", "_" or "-"');

/** Free text kept in the registry (a name, a plan): one line, bounded. */
export const text = z
  .string()
  .min(1, 'empty')
  .max(200, 'at most 200 characters')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
  .regex(/^[^\u0000-\u001f]*$/, 'one line of text without control characters');

/** Parses one flag's value, or refuses it with FLO_USAGE naming the flag and what it takes. */
export function parseFlag<T>(flag: string, value: string, schema: z.ZodType<T, string>, example: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value;
  throw new FlotillaError('FLO_USAGE', `${flag} ${JSON.stringify(shown)} is not ${parsed.error.issues[0]?.message ?? 'valid'}.`, {
    hint: `For example ${flag} ${example}.`,
    meta: { flag, value: shown },
  });
}

/** The same for an optional flag. */
export function optionalFlag<T>(flag: string, value: string | undefined, schema: z.ZodType<T, string>, example: string): T | undefined {
  return value === undefined ? undefined : parseFlag(flag, value, schema, example);
}

/** Slugs of existing tenants given on the command line are checked before anything runs. */
export function slugs(values: readonly string[] | undefined): string[] | undefined {
  for (const value of values ?? []) assertSlugReference(value);
  return values ? [...values] : undefined;
}
