/**
 * What an operator (and anyone asking the proxy) should hear about a
 * configuration that works but breaks a promise: said the same way at
 * `proxy start`, in `ls` and in `policy check`.
 */

/** A configuration without `audit:` runs without an audit trail. */
export const NO_AUDIT_TRAIL =
  'the proxy keeps no audit trail: its configuration has no audit: section (add audit: { path: FILE }, see docs/configuration.md)';

/** Roles an identity carries that the proxy's role documents do not define. */
export function unknownRolesNotice(unknown: string[]): string {
  const names = unknown.map((r) => `"${r}"`).join(', ');
  return `the proxy defines no role named ${names}, so ${unknown.length === 1 ? 'it grants' : 'they grant'} nothing (ask an administrator to define ${unknown.length === 1 ? 'it' : 'them'} in the proxy's roles, or for an identity with roles the proxy defines)`;
}
