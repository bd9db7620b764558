import { FlotillaError } from './errors.js';

/** No `_`: derived names replace `-` with `_`, so a slug maps to exactly one name. */
export const SLUG_PATTERN = /^[a-z][a-z0-9-]{1,40}$/;

export function assertSlug(slug: string): void {
  if (SLUG_PATTERN.test(slug)) return;
  const reason =
    slug.length < 2
      ? 'it is shorter than 2 characters'
      : slug.length > 41
        ? `it is ${slug.length} characters long (at most 41)`
        : !/^[a-z]/.test(slug)
          ? 'it must start with a lowercase letter'
          : 'it may only hold lowercase letters, digits and "-"';
  throw new FlotillaError('FLO_SLUG_INVALID', `Invalid tenant slug ${JSON.stringify(slug)}: ${reason}.`, {
    hint: 'Use 2 to 41 characters: a lowercase letter first, then lowercase letters, digits or "-" (for example "acme-paris").',
    meta: { slug },
  });
}

/** `acme-paris` with prefix `tenant_` → `tenant_acme_paris`. */
export function derivedName(prefix: string, slug: string): string {
  return `${prefix}${slug.replaceAll('-', '_')}`;
}
