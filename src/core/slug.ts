import { FlotillaError } from './errors.js';

/**
 * Lowercase words of letters and digits joined by single hyphens. No `_`, no
 * `--`, no trailing `-`: a slug's derived name (`-` → `_`) then never holds
 * `__`, which is the separator of the schemas a schema tenant's migrations
 * create (`<tenant schema>__<name>`). So no tenant's name is another tenant's
 * name extended, and `acme-paris` → `tenant_acme_paris` maps back to one slug.
 */
export const SLUG_PATTERN = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
export const SLUG_MAX = 41;

/** PostgreSQL cuts names to NAMEDATALEN - 1 bytes, silently: a longer name could be another tenant's. */
export const MAX_NAME_BYTES = 63;

export function assertSlug(slug: string): void {
  if (SLUG_PATTERN.test(slug) && slug.length >= 2 && slug.length <= SLUG_MAX) return;
  const reason =
    slug.length < 2
      ? 'it is shorter than 2 characters'
      : slug.length > SLUG_MAX
        ? `it is ${slug.length} characters long (at most ${SLUG_MAX})`
        : !/^[a-z]/.test(slug)
          ? 'it must start with a lowercase letter'
          : !/^[a-z0-9-]*$/.test(slug)
            ? 'it may only hold lowercase letters, digits and "-"'
            : slug.endsWith('-')
              ? 'it may not end with "-"'
              : 'it may not hold "--" (a single "-" between words)';
  throw new FlotillaError('FLO_SLUG_INVALID', `Invalid tenant slug ${JSON.stringify(slug.length > 80 ? `${slug.slice(0, 80)}…` : slug)}: ${reason}.`, {
    hint: `Use 2 to ${SLUG_MAX} characters: lowercase words of letters and digits joined by single "-" (for example "acme-paris").`,
    meta: { slug: slug.slice(0, 200) },
  });
}

/** The slugs earlier versions accepted (`acme--paris`, `acme-`): still valid to name a tenant that exists. */
const EXISTING_SLUG = /^[a-z][a-z0-9-]{1,40}$/;

/**
 * Checks a slug that names an existing tenant (to back it up, restore it, show
 * it): tenants created by earlier versions under their looser rule are still
 * reachable; new tenants must follow SLUG_PATTERN (assertSlug).
 */
export function assertSlugReference(slug: string): void {
  if (!EXISTING_SLUG.test(slug)) assertSlug(slug);
}

/**
 * `acme-paris` with prefix `tenant_` → `tenant_acme_paris`; refused when the
 * name would not fit PostgreSQL's 63 bytes (it would be cut, and could then be
 * another tenant's name).
 */
export function derivedName(prefix: string, slug: string): string {
  const name = `${prefix}${slug.replaceAll('-', '_')}`;
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    const room = MAX_NAME_BYTES - Buffer.byteLength(prefix);
    throw new FlotillaError(
      'FLO_SLUG_INVALID',
      `Tenant slug ${JSON.stringify(slug)} is too long for the name prefix "${prefix}": "${name}" is over PostgreSQL's ${MAX_NAME_BYTES}-byte limit for names.`,
      {
        hint: `With this prefix a slug may have at most ${room} characters: pick a shorter slug, or a shorter tenants prefix in the config.`,
        meta: { slug, prefix, maxSlugLength: room },
      },
    );
  }
  return name;
}
