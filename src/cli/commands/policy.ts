/** `mcp-access policy check`: what the proxy's roles decide for an identity, a server and a tool, and why. */
import type { CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface CheckArgs {
  config: string;
  roles: string[];
  server: string;
  tool?: string;
  table?: string;
  args?: string;
  resource?: string;
  prompt?: string;
  format: 'text' | 'json';
}

const checkCommand = defineCommand<CheckArgs>({
  command: 'check',
  describe: 'Explain whether roles reach a server (and may call a tool), and which role and rule decide',
  builder: (y) =>
    y
      .option('config', {
        alias: 'c',
        type: 'string',
        demandOption: true,
        describe: 'The proxy configuration file (its roles and roles_files)',
      })
      .option('roles', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: "The identity's roles, comma-separated or repeated",
      })
      .option('server', { type: 'string', demandOption: true, describe: 'A server name from the configuration' })
      .option('tool', { type: 'string', describe: 'A tool name to judge on that server' })
      .option('table', {
        type: 'string',
        describe: 'For a database: a table (schema.table; public by default) whose privileges to show',
      })
      .option('args', {
        type: 'string',
        describe: "The tool call's arguments as a JSON object, judged by the roles' argument rules (with --tool)",
      })
      .option('resource', { type: 'string', describe: 'A resource URI to judge on that server' })
      .option('prompt', { type: 'string', describe: 'A prompt name to judge on that server' })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Output format' })
      .example(
        '$0 policy check --config proxy.yaml --roles llm-access --server filesystem --tool write_file',
        'Is write_file denied, and by what?',
      )
      .example(
        '$0 policy check -c proxy.yaml --roles db-reader --server shop --table public.products',
        'For a database: db_names, db_users, db_permissions, and the privileges on one table',
      )
      .example(
        '$0 policy check -c proxy.yaml --roles example-role,llm-access --server filesystem',
        'Reachability and the allowed/denied tool patterns',
      )
      .example(
        `$0 policy check -c proxy.yaml --roles dev --server filesystem --tool read_text_file --args '{"path":"/etc/passwd"}'`,
        'Would this call pass the argument rules?',
      )
      .epilogue(
        'Exit status: 0 when allowed, 5 when denied (the server, or the tool, resource or prompt given; the explanation is printed either way).',
      ),
  handler: async (argv) => {
    const { AccessError, EXIT } = await import('../../errors.js');
    const { loadProxyConfig } = await import('../../proxy/config.js');
    const { loadRoles } = await import('../../rbac/roles.js');
    const { Policy } = await import('../../rbac/policy.js');
    const { print, printJson } = await import('../output.js');

    const config = await loadProxyConfig(argv.config);
    const { roles: fromConfig, warnings } = loadRoles({
      inline: config.rolesInline,
      files: config.rolesFiles,
      baseDir: config.baseDir,
      configPath: config.path,
    });
    // Roles created with `mcp-access role create`, as the running proxy merges them (proxy.yaml's win a name).
    const { openBackend } = await import('../../backend/open.js');
    const { loadBackendRoles, roleStore } = await import('../../backend/roles.js');
    const backend = await openBackend(config.backend);
    let fromBackend;
    try {
      fromBackend = await loadBackendRoles(roleStore(backend), new Set(fromConfig.map((r) => r.name)));
    } finally {
      await backend.close();
    }
    warnings.push(...fromBackend.warnings);
    const roles = [...fromConfig, ...fromBackend.roles];
    const server = config.servers.find((s) => s.name === argv.server);
    if (!server) {
      throw new AccessError(
        'UNKNOWN_SERVER',
        `server "${argv.server}" is not in ${argv.config} (servers: ${config.servers.map((s) => s.name).join(', ') || 'none'})`,
        {
          hint: 'pass one of the configured server names to --server',
        },
      );
    }
    const roleNames = [
      ...new Set(
        argv.roles
          .flatMap((r) => String(r).split(','))
          .map((r) => r.trim())
          .filter((r) => r !== ''),
      ),
    ];
    const policy = new Policy(roles, config.rbac);
    const ref = { name: server.name, labels: server.labels, transport: server.transport };
    const reach = policy.canReachServer(roleNames, ref);
    const patterns = policy.toolPatterns(roleNames, ref);
    const resourcePatterns = policy.namedPatterns('resources', roleNames, ref);
    const promptPatterns = policy.namedPatterns('prompts', roleNames, ref);
    const unknown = policy.unknownRoles(roleNames);
    let args: unknown;
    if (argv.args !== undefined) {
      if (argv.tool === undefined)
        throw new AccessError('USAGE', '--args needs --tool', { hint: 'name the tool the arguments are for' });
      try {
        args = JSON.parse(argv.args);
      } catch (err) {
        throw new AccessError('USAGE', `--args is not valid JSON (${(err as Error).message})`, {
          hint: `pass the arguments as one JSON object, e.g. --args '{"path":"/srv/a.txt"}'`,
        });
      }
      if (typeof args !== 'object' || args === null || Array.isArray(args))
        throw new AccessError('USAGE', '--args must be a JSON object', { hint: `e.g. --args '{"path":"/srv/a.txt"}'` });
    }
    const tool =
      argv.tool === undefined
        ? undefined
        : {
            name: argv.tool,
            ...(args === undefined
              ? policy.toolDecision(roleNames, ref, argv.tool)
              : policy.callDecision(roleNames, ref, argv.tool, args)),
          };
    const resource =
      argv.resource === undefined
        ? undefined
        : { uri: argv.resource, ...policy.resourceDecision(roleNames, ref, argv.resource) };
    const prompt =
      argv.prompt === undefined
        ? undefined
        : { name: argv.prompt, ...policy.promptDecision(roleNames, ref, argv.prompt) };
    const db = server.transport === 'postgres' ? policy.databaseGrants(roleNames, ref) : undefined;
    const table = db && argv.table !== undefined ? splitTable(argv.table) : undefined;
    const database = db && {
      access: db.provisioning ? 'db_permissions (a database role per session)' : 'db_users',
      ...db.patterns,
      usersAvailable: db.users,
      ...(table
        ? {
            table: {
              name: `${table.schema}.${table.name}`,
              privileges: (['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const).map((p) => ({
                privilege: p,
                ...db.tableDecision(table.schema, table.name, p),
              })),
            },
          }
        : {}),
    };
    const relevantWarnings = warnings.filter((w) =>
      roles.some((r) => roleNames.includes(r.name) && w.startsWith(`${r.source}:`)),
    );
    if (!config.audit) {
      const { NO_AUDIT_TRAIL } = await import('../../proxy/notices.js');
      relevantWarnings.push(NO_AUDIT_TRAIL);
    }

    if (argv.format === 'json') {
      printJson({
        server: server.name,
        labels: server.labels,
        roles: roleNames,
        unknownRoles: unknown,
        reach,
        tools: patterns,
        resources: { ...resourcePatterns, default: config.rbac.defaultResources },
        prompts: { ...promptPatterns, default: config.rbac.defaultPrompts },
        tool,
        ...(database ? { database } : {}),
        resource,
        prompt,
        warnings: relevantWarnings,
      });
    } else {
      const labels =
        Object.entries(server.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ') || 'no labels';
      const decided = (d: { allowed: boolean; role?: string; rule?: string }) =>
        `${d.allowed ? 'allowed' : 'DENIED'}${d.role ? ` by role ${d.role}` : ''}${d.rule ? ` (${d.rule})` : ''}`;
      const lines = [
        `server  ${server.name} (${labels})`,
        `roles   ${roleNames.join(', ')}${unknown.length ? `  [not defined by any role: ${unknown.join(', ')} (they grant nothing)]` : ''}`,
        `access  ${decided(reach)}`,
        `        ${reach.reason}`,
        `tools   allow: ${patterns.allow.join(', ') || '(none)'}`,
        `        deny:  ${patterns.deny.join(', ') || '(none)'}`,
      ];
      const named = (label: string, p: typeof resourcePatterns, key: string, dflt: string) => {
        lines.push(
          `${label}allow: ${p.allow.join(', ') || '(none)'}`,
          `          deny:  ${p.deny.join(', ') || '(none)'}`,
        );
        if (p.defaulted.length)
          lines.push(
            `          ${p.defaulted.join(', ')} ${p.defaulted.length === 1 ? 'does' : 'do'} not write mcp.${key}: every ${key === 'resources' ? 'resource' : 'prompt'} (rbac.default_${key}: ${dflt})`,
          );
        else if (dflt === 'none' && reach.allowed)
          lines.push(`          roles that do not write mcp.${key} allow none (rbac.default_${key}: none)`);
      };
      named('resources ', resourcePatterns, 'resources', config.rbac.defaultResources);
      named('prompts   ', promptPatterns, 'prompts', config.rbac.defaultPrompts);
      if (tool) lines.push(`tool    ${tool.name}: ${decided(tool)}`, `        ${tool.reason}`);
      if (database) {
        const list = (xs: string[]) => xs.join(', ') || '(none)';
        lines.push(
          `db      access: ${database.access}`,
          `        db_names: ${list(database.names)}${database.denyNames.length ? `  deny: ${list(database.denyNames)}` : ''}`,
          `        db_users: ${list(database.users)}`,
          `        db_permissions: ${list(database.permissions)}${database.denyPermissions.length ? `  deny: ${list(database.denyPermissions)}` : ''}`,
        );
        if (database.table)
          for (const p of database.table.privileges)
            lines.push(`table   ${database.table.name} ${p.privilege}: ${decided(p)}`, `        ${p.reason}`);
      }
      if (resource) lines.push(`resource ${resource.uri}: ${decided(resource)}`, `        ${resource.reason}`);
      if (prompt) lines.push(`prompt  ${prompt.name}: ${decided(prompt)}`, `        ${prompt.reason}`);
      for (const w of relevantWarnings) lines.push(`warning ${w}`);
      print(lines.join('\n'));
    }
    const asked = [tool, resource, prompt].filter((d) => d !== undefined);
    const allowed = asked.length ? asked.every((d) => d.allowed) : reach.allowed;
    if (!allowed) process.exitCode = EXIT.ACCESS_DENIED;
  },
});

function splitTable(text: string): { schema: string; name: string } {
  const dot = text.indexOf('.');
  return dot < 0 ? { schema: 'public', name: text } : { schema: text.slice(0, dot), name: text.slice(dot + 1) };
}

export const policyCommand: CommandModule = {
  command: 'policy',
  describe: 'Check what roles allow (see docs/rbac.md)',
  builder: (y) => y.command(checkCommand).demandCommand(1, 'name a policy command: check'),
  handler: () => {},
};
