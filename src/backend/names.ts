/** Record names every backend accepts: no path separators, no leading dot, bounded. */
import { AccessError } from '../errors.js';

const RECORD_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export function checkRecordName(kind: string, name: string): void {
  if (typeof name !== 'string' || !RECORD_NAME.test(name))
    throw new AccessError('USAGE', `${kind} name ${JSON.stringify(name)} is not allowed`, {
      hint: 'use letters, digits and . _ : @ - (starting with a letter or digit, at most 128)',
    });
}

export function isRecordName(name: string): boolean {
  return RECORD_NAME.test(name);
}
