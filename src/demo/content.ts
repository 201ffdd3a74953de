/**
 * What the demo writes into its directory: the seeds' two roles and a small
 * sample directory for server-filesystem. Embedded as text because the
 * package ships bin/, dist/ and docs/ only (not test/); test/demo.test.ts
 * checks that the roles are the same documents as test/fixtures/roles/.
 */

/** Seed 000's role: every tool of servers labelled env: dev. */
export const EXAMPLE_ROLE_YAML = `kind: role
version: v6
metadata:
  name: example-role
spec:
  allow:
    app_labels:
      'env': 'dev'
    mcp:
      tools: ['*']
`;

/**
 * Seed 003's read-only role, with its one typo fixed (the seed writes the
 * second list item as \`_ list_*\`, which is not YAML). It names no app_labels,
 * so mcp-access applies it to every server (docs/rbac.md).
 */
export const LLM_ACCESS_ROLE_YAML = `kind: role
metadata:
  name: llm-access
spec:
  allow:
    mcp_tools:
      - get_*
      - list_*
      - read_*
      - search_files
`;

export const DEMO_ROLES: ReadonlyArray<{ name: string; file: string; yaml: string }> = [
  { name: 'example-role', file: 'example-role.yaml', yaml: EXAMPLE_ROLE_YAML },
  { name: 'llm-access', file: 'llm-access.yaml', yaml: LLM_ACCESS_ROLE_YAML },
];

/** The file the tour reads, and then tries to overwrite (seed 003's "products table"). */
export const SAMPLE_READ_FILE = 'products.csv';

/** Relative path → content of the sample directory server-filesystem serves. */
export const SAMPLE_FILES: Readonly<Record<string, string>> = {
  'README.md': `# Sample data for the mcp-access demo

server-filesystem serves this directory. The demo's bot holds the read-only
role llm-access: it may list, search and read these files, and every attempt
to change them is denied by the proxy and written to the audit log.
`,
  'products.csv': `id,name,price_eur,stock
1,Widget,9.90,120
2,Gadget,24.50,35
3,Gizmo,4.75,980
`,
  'notes/meeting.md': `# Planning notes

- Price review for Gadget next week.
- Nobody edits products.csv by hand.
`,
};
