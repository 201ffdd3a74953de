/**
 * What the demo writes into its directory: the roles (Teleport's two example
 * roles and one of the demo's own for the env: prod server) and a small
 * sample directory for server-filesystem. Embedded as text because the
 * package ships bin/, dist/ and docs/ only (not test/); test/demo.test.ts
 * checks that Teleport's two are the same documents as test/fixtures/roles/.
 */

/** The role of Teleport's machine-identity guide: every tool of servers labelled env: dev. */
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
 * The read-only role of Teleport's MCP access guide, with its one typo fixed
 * (the guide writes the second list item as \`_ list_*\`, which is not YAML).
 * It names no app_labels, so mcp-access applies it to every server
 * (docs/rbac.md). Its patterns use underscores, the way server-filesystem
 * names its tools; they match none of server-everything's (get-sum, …).
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

/**
 * The demo's own role for the env: prod server (server-everything, whose tool
 * names use hyphens): its get-* tools and echo, except get-env, which would
 * hand the server's environment (secrets included) to the agent. The deny
 * wins over the allow.
 */
export const PROD_GET_TOOLS_ROLE_YAML = `kind: role
version: v7
metadata:
  name: prod-get-tools
spec:
  allow:
    app_labels:
      env: prod
    mcp:
      tools: ['get-*', echo]
  deny:
    mcp:
      tools: [get-env]
`;

export const DEMO_ROLES: ReadonlyArray<{ name: string; file: string; yaml: string }> = [
  { name: 'example-role', file: 'example-role.yaml', yaml: EXAMPLE_ROLE_YAML },
  { name: 'llm-access', file: 'llm-access.yaml', yaml: LLM_ACCESS_ROLE_YAML },
  { name: 'prod-get-tools', file: 'prod-get-tools.yaml', yaml: PROD_GET_TOOLS_ROLE_YAML },
];

/** The file the tour reads, and then tries to overwrite (the "products table" of Teleport's guide). */
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
