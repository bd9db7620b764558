import { describe, expect, it } from 'vitest';
import { redactSecrets, redactUrl, redactValue } from '../../src/core/redact.js';

describe('redaction', () => {
  it.each([
    ['postgres://user:pw@host/db', 'postgres://user:***@host/db'],
    ['postgres://user:Se/cret@host/db', 'postgres://user:***@host/db'],
    ['postgres://user:p@ss@host/db', 'postgres://user:***@host/db'],
    ['postgres://user@host/db?password=s3cret&sslmode=require', 'postgres://user@host/db?password=***&sslmode=require'],
    ['user:Se/cret@host/db', 'user:***@host/db'],
    ['host=db password=s3cret user=u', 'host=db password=*** user=u'],
    ['postgres://user@host/db', 'postgres://user@host/db'],
  ])('hides the password of %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it('hides passwords anywhere in a text, and leaves the rest', () => {
    expect(redactSecrets('Cannot connect to postgres://u:x%2Fy@h:5432/d and postgresql://v:w@h2/e: refused')).toBe(
      'Cannot connect to postgres://u:***@h:5432/d and postgresql://v:***@h2/e: refused',
    );
    expect(redactSecrets('the user root@localhost connected')).toBe('the user root@localhost connected');
  });

  it('walks JSON values, masking keys that name a secret', () => {
    expect(redactValue({ url: 'postgres://u:p@h/d', password: 'x', nested: [{ token: 'y', passed: true }] })).toEqual({
      url: 'postgres://u:***@h/d',
      password: '***',
      nested: [{ token: '***', passed: true }],
    });
  });
});
