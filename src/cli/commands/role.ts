/**
 * `mcp-access role create|ls|get|rm`: roles as resources in the backend the
 * proxy configuration names (Teleport's `tctl create -f role.yaml`). Running
 * proxies apply a change within about a second. Reference: docs/rbac.md.
 */
import type { Argv, CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface ConfigArgs {
  config: string;
  format: 'text' | 'json';
}

function common<T>(y: Argv<T>): Argv<T & ConfigArgs> {
  return y
    .option('config', {
      alias: 'c',
      type: 'string',
      demandOption: true,
      describe: 'The proxy configuration (its backend holds the roles)',
    })
    .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Output format' });
}

const createCommand = defineCommand<ConfigArgs & { file: string }>({
  command: 'create',
  describe: 'Create or update the roles in a YAML file (one or more documents)',
  builder: (y) =>
    common(y)
      .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'Role YAML (kind: role)' })
      .example('$0 role create -f role.yaml --config proxy.yaml', 'Running proxies apply it within a second'),
  handler: async (argv) => {
    const { openRoleAdmin, createRoles } = await import('../../proxy/role-admin.js');
    const { print, printJson } = await import('../output.js');
    const admin = await openRoleAdmin(argv.config);
    try {
      const done = await createRoles(admin, argv.file);
      for (const r of done) for (const w of r.warnings) process.stderr.write(`mcp-access: warning: ${w}\n`);
      if (argv.format === 'json') printJson(done.map((r) => ({ role: r.name, created: r.created })));
      else print(done.map((r) => `role "${r.name}" has been ${r.created ? 'created' : 'updated'}`).join('\n'));
    } finally {
      await admin.backend.close();
    }
  },
});

const lsCommand = defineCommand<ConfigArgs>({
  command: 'ls',
  describe: 'List the roles: those of the backend and those of the proxy configuration',
  builder: (y) => common(y).example('$0 role ls --config proxy.yaml', 'Name, source, last change'),
  handler: async (argv) => {
    const { openRoleAdmin, listRoles } = await import('../../proxy/role-admin.js');
    const { print, printJson, table } = await import('../output.js');
    const admin = await openRoleAdmin(argv.config);
    try {
      const roles = await listRoles(admin);
      if (argv.format === 'json') return printJson(roles);
      if (roles.length === 0) return print('no roles');
      print(
        table(
          ['NAME', 'SOURCE', 'WHERE', 'UPDATED'],
          roles.map((r) => [
            r.name,
            r.source === 'config' ? 'proxy.yaml' : r.shadowed ? 'backend (ignored: proxy.yaml defines it)' : 'backend',
            r.where,
            r.updatedAt ?? '',
          ]),
        ),
      );
    } finally {
      await admin.backend.close();
    }
  },
});

const getCommand = defineCommand<ConfigArgs & { name: string }>({
  command: 'get <name>',
  describe: 'Print a role of the backend as YAML (as `role create -f` takes it)',
  builder: (y) =>
    common(y)
      .positional('name', { type: 'string', demandOption: true })
      .example('$0 role get auditor --config proxy.yaml > auditor.yaml', 'Edit it, then `role create -f auditor.yaml`'),
  handler: async (argv) => {
    const { openRoleAdmin, getRole } = await import('../../proxy/role-admin.js');
    const { print, printJson } = await import('../output.js');
    const { stringify } = await import('yaml');
    const admin = await openRoleAdmin(argv.config);
    try {
      const rec = await getRole(admin, argv.name);
      if (argv.format === 'json') printJson(rec);
      else print(stringify(rec.document).trimEnd());
    } finally {
      await admin.backend.close();
    }
  },
});

const rmCommand = defineCommand<ConfigArgs & { name: string }>({
  command: 'rm <name>',
  describe: 'Remove a role from the backend (running sessions lose what it granted within a second)',
  builder: (y) => common(y).positional('name', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const { openRoleAdmin, removeRole } = await import('../../proxy/role-admin.js');
    const { print, printJson } = await import('../output.js');
    const admin = await openRoleAdmin(argv.config);
    try {
      await removeRole(admin, argv.name);
      if (argv.format === 'json') printJson({ role: argv.name, removed: true });
      else print(`role "${argv.name}" has been removed`);
    } finally {
      await admin.backend.close();
    }
  },
});

export const roleCommand: CommandModule = {
  command: 'role',
  describe: 'Manage roles stored in the backend (see docs/rbac.md)',
  builder: (y) =>
    y
      .command(createCommand)
      .command(lsCommand)
      .command(getCommand)
      .command(rmCommand)
      .demandCommand(1, 'name a role command: create, ls, get or rm'),
  handler: () => {},
};
