import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../../src/util/redact.js';
import { AccessError } from '../../src/errors.js';

describe('redactSecrets', () => {
  it('removes URL credentials and secret query values, keeps the rest', () => {
    expect(redactSecrets('at http://admin:hunter2@example.test:8080/mcp?api_key=abc&x=1 failed')).toBe(
      'at http://REDACTED@example.test:8080/mcp?api_key=REDACTED&x=1 failed',
    );
    expect(redactSecrets('https://tok@h/p?access_token=t1;Key=k2&page=3&client-secret=s3')).toBe(
      'https://REDACTED@h/p?access_token=REDACTED;Key=REDACTED&page=3&client-secret=REDACTED',
    );
    expect(redactSecrets('no secrets in a = b or user@example')).toBe('no secrets in a = b or user@example');
  });
  it('applies to every AccessError message', () => {
    expect(new AccessError('UPSTREAM_FAILED', 'cannot reach https://u:p@h/?token=zzz').message).toBe(
      'cannot reach https://REDACTED@h/?token=REDACTED',
    );
  });
});
