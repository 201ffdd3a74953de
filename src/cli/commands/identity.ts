/** `mcp-access identity issue|show`: write and inspect identity files. */
import type { CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface IssueArgs {
  'ca-dir': string;
  user: string;
  roles: string[];
  trait?: string[];
  ttl: string;
  'key-type': 'ec' | 'rsa' | 'ed25519';
  out: string;
}

const issueCommand = defineCommand<IssueArgs>({
  command: 'issue',
  describe: 'Issue a short-lived identity file from the cluster CA',
  builder: (y) =>
    y
      .option('ca-dir', { type: 'string', demandOption: true, describe: 'The CA directory made by `ca init`' })
      .option('user', { type: 'string', demandOption: true, describe: 'User name (certificate CN)' })
      .option('roles', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'Roles, comma-separated or repeated (certificate O values)',
      })
      .option('trait', {
        type: 'string',
        array: true,
        describe: 'A trait for role templates ({{internal.NAME}}): NAME=v1,v2; repeat for more traits',
      })
      .option('ttl', { type: 'string', default: '1h', describe: 'Lifetime, e.g. 30s, 10m, 1h (5s to 30d)' })
      .option('key-type', {
        choices: ['ec', 'rsa', 'ed25519'] as const,
        default: 'ec' as const,
        describe: 'Private key type (ec = P-256)',
      })
      .option('out', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'Identity file to write (mode 0600, replaced atomically)',
      })
      .example(
        '$0 identity issue --ca-dir ./ca --user alice --roles reader --out alice.identity',
        'A one-hour identity for alice',
      )
      .example(
        '$0 identity issue --ca-dir ./ca --user ci --roles reader,writer --ttl 10m --key-type ed25519 -o ci.identity',
        'Ten minutes, Ed25519 key',
      ),
  handler: async (argv) => {
    const { parseIdentityTtl } = await import('../../identity/ttl.js');
    const { loadCa, issueIdentity, writeIdentityFile } = await import('../../identity/ca.js');
    const { print } = await import('../output.js');
    const { formatDuration } = await import('../../util/duration.js');
    const ttlMs = parseIdentityTtl(argv.ttl);
    const roles = argv.roles
      .flatMap((r) => String(r).split(','))
      .map((r) => r.trim())
      .filter((r) => r !== '');
    const { parseTraitOptions } = await import('../../identity/claims.js');
    const traits = parseTraitOptions(argv.trait ?? []);
    const ca = await loadCa(argv['ca-dir']);
    const text = await issueIdentity(ca, {
      user: String(argv.user),
      roles,
      ttlMs,
      keyType: argv['key-type'],
      ...(Object.keys(traits).length ? { traits } : {}),
    });
    await writeIdentityFile(argv.out, text);
    const until = new Date(Date.now() + ttlMs).toISOString();
    print(
      `Wrote ${argv.out}: user ${argv.user}, roles ${roles.join(', ')}, cluster ${ca.cluster}, valid for ${formatDuration(ttlMs)} (until about ${until})`,
    );
  },
});

interface ShowArgs {
  identity?: string;
  format: 'text' | 'json';
  check: boolean;
}

const showCommand = defineCommand<ShowArgs>({
  command: 'show',
  describe: 'Describe an identity file (also an expired one)',
  builder: (y) =>
    y
      .option('identity', { alias: 'i', type: 'string', describe: 'Identity file (default: $MCP_ACCESS_IDENTITY)' })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Output format' })
      .option('check', {
        type: 'boolean',
        default: false,
        describe: 'After printing, fail (exit 3) if the identity is expired, not yet valid or untrusted',
      })
      .example('$0 identity show -i alice.identity', 'User, roles, validity, fingerprints')
      .example('$0 identity show -i alice.identity --format json', 'The same as JSON (fields in docs/identity.md)'),
  handler: async (argv) => {
    const { AccessError } = await import('../../errors.js');
    const path = argv.identity ?? process.env.MCP_ACCESS_IDENTITY;
    if (!path)
      throw new AccessError('USAGE', 'no identity file given', { hint: 'pass -i FILE or set MCP_ACCESS_IDENTITY' });
    const { examineIdentity, assertUsable } = await import('../../identity/load.js');
    const { describeIdentity, formatIdentityText } = await import('../../identity/describe.js');
    const { print, printJson } = await import('../output.js');
    const now = Date.now();
    const examined = await examineIdentity(path, { now });
    const description = describeIdentity(examined, now);
    if (argv.format === 'json') printJson(description);
    else print(formatIdentityText(description, now));
    if (argv.check) assertUsable(examined, now);
  },
});

export const identityCommand: CommandModule = {
  command: 'identity',
  describe: 'Issue and inspect identity files',
  builder: (y) =>
    y
      .command(issueCommand)
      .command(showCommand)
      .demandCommand(1, 'name an identity command: issue or show')
      .example('$0 identity issue --ca-dir ./ca --user alice --roles reader --out alice.identity', 'Issue an identity')
      .example('$0 identity show -i alice.identity', 'Inspect it'),
  handler: () => {},
};
