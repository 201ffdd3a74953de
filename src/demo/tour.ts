/**
 * The tour: what a user must see, done the way an MCP client does it — the
 * official SDK Client spawning `mcp-access connect` (the exact command line
 * the printed client configs hold) with a host's minimal environment.
 *
 * Every step is checked: if the product does not behave as the story says,
 * the demo fails with DEMO_UNEXPECTED instead of printing a happy story.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { AccessError } from '../errors.js';
import { connectLaunch, type Launch } from '../client/client-config.js';
import type { ServerListing } from '../client/proxy-api.js';
import type { AuditRecord } from '../audit/search.js';
import type { VerifyResult } from '../audit/verify.js';
import { SAMPLE_READ_FILE } from './content.js';
import { DEMO_BOT_ROLES, OPERATOR_ROLE, type DemoEnvironment } from './environment.js';
import type { DemoProgress } from './progress.js';

export const TOUR_SERVER = 'filesystem';
export const READ_TOOL = 'read_text_file';
export const WRITE_TOOL = 'write_file';
/** The env: prod server: server-everything, whose tool names use hyphens. */
export const PROD_SERVER = 'everything';
export const PROD_CALL = { tool: 'get-sum', arguments: { a: 2, b: 3 } };
export const PROD_DENIED_TOOL = 'get-env';

export interface Reach {
  user: string;
  roles: string[];
  identityPath: string;
  servers: ServerListing[];
}

export interface TourResult {
  /** The command line of `mcp-access connect` the tour ran (and the configs print). */
  launch: Launch;
  /** What each identity may reach (`mcp-access ls`): the bot's, then the operator's. */
  reach: Reach[];
  tools: {
    /** tools/list as the bot sees it. */
    visible: string[];
    /** Tools the server has (the operator's list) that the bot's list leaves out. */
    hidden: string[];
  };
  read: { tool: string; path: string; text: string };
  write: { tool: string; path: string; code: number; message: string; auditEventId?: string; fileUnchanged: boolean };
  /** The bot on the env: prod server: what it sees, a call that works, the tool a deny takes away. */
  prod: {
    server: string;
    visible: string[];
    call: { tool: string; arguments: Record<string, unknown>; text: string };
    denied: { tool: string; code: number; message: string; auditEventId?: string };
  };
  audit: { path: string; events: AuditRecord[]; otherEvents: number; chain: VerifyResult };
}

interface Session {
  client: Client;
  stderr(): string;
  close(): Promise<void>;
}

async function openSession(launch: Launch, name: string): Promise<Session> {
  const transport = new StdioClientTransport({
    command: launch.command,
    args: launch.args,
    env: getDefaultEnvironment(),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const client = new Client({ name, version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (err) {
    await client.close().catch(() => {});
    throw new AccessError(
      'DEMO_UNEXPECTED',
      `the MCP client could not start a session through \`mcp-access connect\`: ${(err as Error).message}${stderr ? ` (connect said: ${stderr.trim().split('\n').pop()})` : ''}`,
    );
  }
  return { client, stderr: () => stderr, close: () => client.close() };
}

async function listAllTools(client: Client): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  return names;
}

function unexpected(what: string): never {
  throw new AccessError('DEMO_UNEXPECTED', what);
}

async function reachOf(env: DemoEnvironment, identityPath: string): Promise<Reach> {
  const [{ loadIdentity }, { listServers }] = await Promise.all([
    import('../identity/load.js'),
    import('../client/proxy-api.js'),
  ]);
  const identity = await loadIdentity(identityPath, { warn: () => {} });
  const [host, port] = [
    env.proxyAddress.slice(0, env.proxyAddress.lastIndexOf(':')),
    Number(env.proxyAddress.slice(env.proxyAddress.lastIndexOf(':') + 1)),
  ];
  const { servers } = await listServers({ host, port }, identity);
  return { user: identity.user, roles: identity.roles, identityPath, servers };
}

/** Waits (bounded) until the proxy has written the end of the bot's sessions, so the table shows them whole. */
async function auditOfBot(
  env: DemoEnvironment,
  sinceMs: number,
  sessions: number,
): Promise<{ events: AuditRecord[]; otherEvents: number }> {
  const { searchAuditFile } = await import('../audit/search.js');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { events } = await searchAuditFile(env.auditPath, { sinceMs });
    const mine = events.filter((e) => e.user === env.bot.user);
    const ended = mine.filter((e) => e.type === 'mcp.session.end').length >= sessions;
    if (ended || Date.now() > deadline) return { events: mine, otherEvents: events.length - mine.length };
    await sleep(50);
  }
}

export async function runTour(env: DemoEnvironment, progress: DemoProgress): Promise<TourResult> {
  const launch = connectLaunch(TOUR_SERVER, env.bot.identityPath, env.proxyAddress);
  const operatorLaunch = connectLaunch(TOUR_SERVER, env.operatorIdentityPath, env.proxyAddress);

  const reach = await progress.run(
    'Asking the proxy what each identity may reach',
    async () => Promise.all([reachOf(env, env.bot.identityPath), reachOf(env, env.operatorIdentityPath)]),
    () => 'asked the proxy what each identity may reach (mcp-access ls)',
  );

  // Both sessions start server-filesystem; start them together.
  const [bot, operator] = await progress.run(
    `Starting ${TOUR_SERVER} through \`mcp-access connect\` (the bot's identity, and the operator's for contrast)`,
    async () => {
      const sessions = await Promise.allSettled([
        openSession(launch, 'mcp-access-demo'),
        openSession(operatorLaunch, 'mcp-access-demo-operator'),
      ]);
      const failed = sessions.find((s) => s.status === 'rejected');
      if (failed) {
        await Promise.all(sessions.flatMap((s) => (s.status === 'fulfilled' ? [s.value.close().catch(() => {})] : [])));
        throw failed.reason;
      }
      return sessions.map((s) => (s as PromiseFulfilledResult<Session>).value) as [Session, Session];
    },
    () => `two MCP sessions to ${TOUR_SERVER} through \`mcp-access connect\` (SDK client, minimal environment)`,
  );

  try {
    const [visible, all] = await Promise.all([listAllTools(bot.client), listAllTools(operator.client)]);
    await operator.close();
    const hidden = all.filter((t) => !visible.includes(t));
    if (visible.length === 0)
      unexpected(`the bot's tools/list on ${TOUR_SERVER} is empty; ${DEMO_BOT_ROLES[0]} should allow the read tools`);
    if (!visible.includes(READ_TOOL)) unexpected(`the bot's tools/list on ${TOUR_SERVER} lacks ${READ_TOOL}`);
    if (visible.includes(WRITE_TOOL))
      unexpected(`the bot's tools/list on ${TOUR_SERVER} includes ${WRITE_TOOL}; ${DEMO_BOT_ROLES[0]} is read-only`);
    if (!all.includes(WRITE_TOOL))
      unexpected(`the ${OPERATOR_ROLE} identity's tools/list on ${TOUR_SERVER} lacks ${WRITE_TOOL}`);

    const path = join(env.sampleDir, SAMPLE_READ_FILE);
    const readResult = await bot.client.callTool({ name: READ_TOOL, arguments: { path } });
    const content = (readResult.content as Array<{ type: string; text?: string }> | undefined) ?? [];
    const text = content.find((c) => c.type === 'text')?.text ?? '';
    if (readResult.isError || !text)
      unexpected(`${READ_TOOL} of ${path} did not return the file: ${JSON.stringify(readResult).slice(0, 300)}`);

    const before = await readFile(path, 'utf8');
    let denial: { code: number; message: string; auditEventId?: string } | undefined;
    try {
      await bot.client.callTool({
        name: WRITE_TOOL,
        arguments: { path, content: 'id,name,price_eur,stock\n1,Widget,0.01,120\n' },
      });
    } catch (err) {
      const e = err as { code?: unknown; message?: string; data?: { auditEventId?: unknown } };
      denial = {
        code: Number(e.code),
        message: String(e.message ?? err),
        auditEventId: typeof e.data?.auditEventId === 'string' ? e.data.auditEventId : undefined,
      };
    }
    const fileUnchanged = (await readFile(path, 'utf8')) === before;
    if (!denial) unexpected(`${WRITE_TOOL} was not denied for the bot's read-only role`);
    if (denial.code !== -32602)
      unexpected(`${WRITE_TOOL} failed with ${denial.code}, not the -32602 of a role denial: ${denial.message}`);
    if (!fileUnchanged) unexpected(`${path} changed although ${WRITE_TOOL} was denied`);

    await bot.close();
    const prod = await prodTour(env, progress);
    const { events, otherEvents } = await auditOfBot(env, env.startedAt, 2);
    const { verifyAuditFile } = await import('../audit/verify.js');
    const chain = await verifyAuditFile(env.auditPath);
    for (const id of [denial.auditEventId, prod.denied.auditEventId]) {
      if (id && !events.some((e) => e.id === id))
        unexpected(`the denial's audit event ${id} is not in ${env.auditPath}`);
    }
    if (!chain.ok) unexpected(`${env.auditPath} does not verify: line ${chain.line}: ${chain.problem}`);

    return {
      launch,
      reach,
      tools: { visible, hidden },
      read: { tool: READ_TOOL, path, text },
      write: { tool: WRITE_TOOL, path, ...denial, fileUnchanged },
      prod,
      audit: { path: env.auditPath, events, otherEvents, chain },
    };
  } finally {
    await Promise.all([bot.close().catch(() => {}), operator.close().catch(() => {})]);
  }
}

/**
 * The bot on server-everything (env: prod). Its tools are named with hyphens
 * (get-sum), so llm-access's get_*, list_* and read_* match none of them; the
 * demo's prod-get-tools role allows get-* and echo there and denies get-env.
 */
async function prodTour(env: DemoEnvironment, progress: DemoProgress): Promise<TourResult['prod']> {
  const launch = connectLaunch(PROD_SERVER, env.bot.identityPath, env.proxyAddress);
  const session = await progress.run(
    `Starting ${PROD_SERVER} through \`mcp-access connect\` (the bot's identity)`,
    () => openSession(launch, 'mcp-access-demo'),
    () => `an MCP session to ${PROD_SERVER} through \`mcp-access connect\``,
  );
  try {
    const visible = await listAllTools(session.client);
    if (!visible.includes(PROD_CALL.tool))
      unexpected(`the bot's tools/list on ${PROD_SERVER} lacks ${PROD_CALL.tool}: ${visible.join(', ') || '(none)'}`);
    if (visible.includes(PROD_DENIED_TOOL))
      unexpected(`the bot's tools/list on ${PROD_SERVER} includes ${PROD_DENIED_TOOL}, which prod-get-tools denies`);
    if (visible.some((t) => !t.startsWith('get-') && t !== 'echo'))
      unexpected(
        `the bot's tools/list on ${PROD_SERVER} has tools prod-get-tools does not allow: ${visible.join(', ')}`,
      );
    const result = await session.client.callTool({ name: PROD_CALL.tool, arguments: PROD_CALL.arguments });
    const text =
      ((result.content as Array<{ type: string; text?: string }> | undefined) ?? []).find((c) => c.type === 'text')
        ?.text ?? '';
    if (result.isError || !text)
      unexpected(`${PROD_CALL.tool} did not answer: ${JSON.stringify(result).slice(0, 300)}`);
    let denied: TourResult['prod']['denied'] | undefined;
    try {
      await session.client.callTool({ name: PROD_DENIED_TOOL, arguments: {} });
    } catch (err) {
      const e = err as { code?: unknown; message?: string; data?: { auditEventId?: unknown } };
      denied = {
        tool: PROD_DENIED_TOOL,
        code: Number(e.code),
        message: String(e.message ?? err),
        auditEventId: typeof e.data?.auditEventId === 'string' ? e.data.auditEventId : undefined,
      };
    }
    if (!denied) unexpected(`${PROD_DENIED_TOOL} was not denied on ${PROD_SERVER}`);
    if (denied.code !== -32602)
      unexpected(`${PROD_DENIED_TOOL} failed with ${denied.code}, not the -32602 of a role denial: ${denied.message}`);
    return {
      server: PROD_SERVER,
      visible,
      call: { tool: PROD_CALL.tool, arguments: PROD_CALL.arguments, text },
      denied,
    };
  } finally {
    await session.close().catch(() => {});
  }
}
