/**
 * `bot start --config bot.yaml`: the subset of tbot's v2 configuration that
 * means something for mcp-access (docs/bot.md). Every key is checked: one
 * this program does not know is an error naming it with its line and column
 * (and a close known key); a tbot key that has no meaning here says so, so a
 * reader of Teleport's guide is never silently ignored.
 *
 *   version: v2
 *   proxy_server: mcp.example.com:3080
 *   onboarding: { join_method: token, token: TOKEN | PATH, ca_pins: [sha256:…] }
 *   storage: { type: directory, path: DIR }
 *   credential_ttl: 1h
 *   renewal_interval: 20m
 *   oneshot: false
 *   services:
 *     - type: identity
 *       allow_reissue: true
 *       destination: { type: directory, path: DIR }
 *
 * Relative paths are relative to the configuration file's directory.
 */
import { dirname, resolve } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { AccessError } from '../errors.js';
import { parseIdentityTtl } from '../identity/ttl.js';
import { parseProxyAddress } from '../tunnel/proxy-address.js';
import { parseDuration } from '../util/duration.js';
import { cleanToken } from '../tunnel/enrolment.js';

export interface BotFileService {
  /** Absolute path of the destination directory. */
  path: string;
  allowReissue: boolean;
}

export interface BotFileConfig {
  proxy?: string;
  /** The token itself, or a file that holds it. */
  token?: { value: string } | { file: string };
  caPins?: string[];
  /** The bot's own state (absolute). */
  storage?: string;
  ttl?: string;
  renewalInterval?: string;
  oneshot?: boolean;
  services: BotFileService[];
}

/** tbot keys (and values) that exist there but mean nothing for mcp-access, with what to do instead. */
const TBOT_ONLY: Record<string, string> = {
  auth_server: 'an mcp-access bot talks to the proxy only: use proxy_server',
  outputs: 'tbot v1 outputs are not supported: use services with type: identity',
  certificate_ttl: 'use credential_ttl',
  credential_lifetime: 'use credential_ttl and renewal_interval at the top level',
  debug: 'use --debug on the command line',
  diag_addr: 'mcp-access bots have no diagnostics listener',
  fips: 'mcp-access has no FIPS mode',
  join_uri: 'use proxy_server and onboarding',
  ca_path: 'use ca_pins (the pin printed by `mcp-access bot add`)',
  bound_keypair: 'mcp-access bots join with a one-time token only',
  azure: 'mcp-access bots join with a one-time token only',
  gitlab: 'mcp-access bots join with a one-time token only',
  terraform: 'mcp-access bots join with a one-time token only',
  symlinks: 'mcp-access always refuses symlinks in the paths it writes',
  acls: "the identity file is mode 0600 for the bot's user; run the MCP client as that user",
  readers: "the identity file is mode 0600 for the bot's user; run the MCP client as that user",
  roles: "a bot's roles are set by the operator with `mcp-access bot add --roles`",
  cluster: "the cluster is the proxy's",
  ssh_config: 'mcp-access identities are for MCP access only',
  name: 'services are not named in mcp-access',
  credential_ttl: 'set credential_ttl at the top level: it applies to every service',
  renewal_interval: 'set renewal_interval at the top level: it applies to every service',
};

const TBOT_SERVICE_TYPES = new Set([
  'application',
  'application-tunnel',
  'database',
  'database-tunnel',
  'kubernetes',
  'kubernetes/v2',
  'kubernetes/argo-cd',
  'ssh-host',
  'ssh-multiplexer',
  'spiffe-svid',
  'spiffe-workload-api',
  'workload-identity-x509',
  'workload-identity-jwt',
  'workload-identity-api',
  'workload-identity-aws-roles-anywhere',
  'example',
  'application-proxy',
  'database-proxy',
]);

type Where = (node: Node | Pair | null | undefined) => string;

class ConfigReader {
  readonly lines = new LineCounter();
  constructor(readonly file: string) {}

  where: Where = (node) => {
    const range =
      (node as { range?: [number, number, number] } | null | undefined)?.range ??
      ((node as Pair | undefined)?.key as { range?: [number, number, number] } | undefined)?.range;
    if (!range) return this.file;
    const { line, col } = this.lines.linePos(range[0]);
    return `${this.file}:${line}:${col}`;
  };

  fail(node: Node | Pair | null | undefined, message: string, hint?: string): never {
    throw new AccessError('BOT_CONFIG_INVALID', `${this.where(node)}: ${message}`, hint ? { hint } : {});
  }
}

function suggest(key: string, known: string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The pairs of a mapping, each key checked against `known`. */
function entries(
  r: ConfigReader,
  node: Node | null | undefined,
  what: string,
  known: string[],
): Map<string, Pair<Node, Node | null>> {
  if (!isMap(node)) r.fail(node, `${what} must be a mapping (key: value lines)`);
  const out = new Map<string, Pair<Node, Node | null>>();
  for (const pair of (node as YAMLMap<Node, Node | null>).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    if (key === undefined) r.fail(pair.key, `${what} has a key that is not a plain name`);
    if (!known.includes(key)) {
      const where = what === 'the configuration' ? '' : ` in ${what}`;
      if (key in TBOT_ONLY)
        r.fail(pair.key, `"${key}"${where} is a tbot setting with no meaning for mcp-access: ${TBOT_ONLY[key]}`);
      r.fail(
        pair.key,
        `unknown key "${key}"${where}${suggest(key, known)}`,
        `the keys accepted here are: ${known.join(', ')}`,
      );
    }
    out.set(key, pair);
  }
  return out;
}

function str(r: ConfigReader, pair: Pair<Node, Node | null>, what: string): string {
  const v = pair.value;
  if (!isScalar(v) || typeof v.value !== 'string' || v.value.trim() === '')
    r.fail(v ?? pair, `${what} must be a non-empty string`);
  return v.value.trim();
}

function bool(r: ConfigReader, pair: Pair<Node, Node | null>, what: string): boolean {
  const v = pair.value;
  if (!isScalar(v) || typeof v.value !== 'boolean') r.fail(v ?? pair, `${what} must be true or false`);
  return v.value;
}

function duration(
  r: ConfigReader,
  pair: Pair<Node, Node | null>,
  what: string,
  check: (text: string) => number,
): string {
  const text = str(r, pair, what);
  try {
    check(text);
  } catch (err) {
    r.fail(pair.value, `${what}: ${(err as Error).message}`, (err as AccessError).hint);
  }
  return text;
}

function directory(r: ConfigReader, node: Node | null | undefined, what: string, base: string): string {
  const m = entries(r, node, what, ['type', 'path']);
  const type = m.get('type');
  if (type) {
    const t = str(r, type, `${what}.type`);
    if (t !== 'directory')
      r.fail(
        type.value,
        `${what}.type "${t}" is not supported: mcp-access writes to a directory only (type: directory)`,
      );
  }
  const path = m.get('path');
  if (!path) r.fail(node, `${what} needs a path`);
  return resolve(base, str(r, path, `${what}.path`));
}

const PIN = /^sha256:[0-9a-fA-F]{64}$/;

/** Parse and check a bot configuration file's text. Throws BOT_CONFIG_INVALID with file:line:column. */
export function parseBotConfig(text: string, file: string): BotFileConfig {
  const r: ConfigReader = new ConfigReader(file);
  const doc = parseDocument(text, { lineCounter: r.lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.pos ? r.lines.linePos(e.pos[0]) : undefined;
    const msg = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw new AccessError('BOT_CONFIG_INVALID', `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${msg}`);
  }
  const base = dirname(resolve(file));
  if (doc.contents === null) r.fail(null, 'the file is empty', 'see docs/bot.md for an example');
  const top = entries(r, doc.contents, 'the configuration', [
    'version',
    'proxy_server',
    'onboarding',
    'storage',
    'credential_ttl',
    'renewal_interval',
    'oneshot',
    'services',
  ]);
  const out: BotFileConfig = { services: [] };

  const version = top.get('version');
  if (version) {
    const v = isScalar(version.value) ? String(version.value.value) : '';
    if (v !== 'v2')
      r.fail(version.value, `version "${v}" is not supported: mcp-access reads tbot's v2 format (version: v2)`);
  }
  const proxy = top.get('proxy_server');
  if (proxy) {
    out.proxy = str(r, proxy, 'proxy_server');
    try {
      parseProxyAddress(out.proxy);
    } catch {
      r.fail(proxy.value, `proxy_server "${out.proxy}" must be host:port`);
    }
  }
  const onboarding = top.get('onboarding');
  if (onboarding) {
    const m = entries(r, onboarding.value, 'onboarding', ['join_method', 'token', 'ca_pins']);
    const method = m.get('join_method');
    if (method) {
      const jm = str(r, method, 'onboarding.join_method');
      if (jm !== 'token')
        r.fail(
          method.value,
          `join_method "${jm}" is not supported: mcp-access bots join with a one-time token (join_method: token)`,
        );
    }
    const token = m.get('token');
    if (token) {
      const t = str(r, token, 'onboarding.token');
      if (/[/\\]/.test(t)) out.token = { file: resolve(base, t) };
      else if (cleanToken(t)) out.token = { value: t };
      else
        r.fail(
          token.value,
          'onboarding.token is neither a join token nor a file path',
          'paste the token `mcp-access bot add` printed, or the path of a file holding it (./token for one beside this file)',
        );
    }
    const pins = m.get('ca_pins');
    if (pins) {
      if (!isSeq(pins.value)) r.fail(pins.value ?? pins, 'onboarding.ca_pins must be a list of sha256:HEX pins');
      out.caPins = (pins.value as unknown as { items: Node[] }).items.map((item) => {
        const p = isScalar(item) && typeof item.value === 'string' ? item.value.trim() : '';
        if (!PIN.test(p))
          r.fail(
            item,
            `onboarding.ca_pins entry "${p}" must be sha256: followed by 64 hex digits`,
            'copy it from the output of `mcp-access bot add`',
          );
        return `sha256:${p.slice(7).toLowerCase()}`;
      });
      if (out.caPins.length === 0) r.fail(pins.value, 'onboarding.ca_pins is empty');
    }
  }
  const storage = top.get('storage');
  if (storage) out.storage = directory(r, storage.value, 'storage', base);
  const ttl = top.get('credential_ttl');
  if (ttl) out.ttl = duration(r, ttl, 'credential_ttl', parseIdentityTtl);
  const interval = top.get('renewal_interval');
  if (interval) {
    out.renewalInterval = duration(r, interval, 'renewal_interval', (t) => {
      const ms = parseDuration(t, 'renewal_interval');
      if (ms < 1000) throw new AccessError('USAGE', `renewal_interval ${t} is too short (at least 1s)`);
      return ms;
    });
  }
  const oneshot = top.get('oneshot');
  if (oneshot) out.oneshot = bool(r, oneshot, 'oneshot');
  const services = top.get('services');
  if (services) {
    if (!isSeq(services.value)) r.fail(services.value ?? services, 'services must be a list (- type: identity …)');
    (services.value as unknown as { items: Node[] }).items.forEach((item, i) => {
      const what = `services[${i}]`;
      if (!isMap(item)) r.fail(item, `${what} must be a mapping with type: identity`);
      const typePair = (item as YAMLMap<Node, Node | null>).items.find(
        (p) => isScalar(p.key) && p.key.value === 'type',
      );
      const type = typePair ? str(r, typePair, `${what}.type`) : undefined;
      if (type === undefined) r.fail(item, `${what} needs type: identity`);
      if (type !== 'identity') {
        if (TBOT_SERVICE_TYPES.has(type))
          r.fail(
            typePair!.value,
            `${what}: service type "${type}" is a tbot service with no meaning for mcp-access: only type: identity (an identity file for \`mcp-access connect -i\`) is supported`,
          );
        r.fail(
          typePair!.value,
          `${what}: unknown service type "${type}"${suggest(type, ['identity'])}`,
          'mcp-access supports type: identity',
        );
      }
      const m = entries(r, item, what, ['type', 'destination', 'allow_reissue']);
      const dest = m.get('destination');
      if (!dest) r.fail(item, `${what} needs a destination (type: directory, path: DIR)`);
      const path = directory(r, dest.value, `${what}.destination`, base);
      const reissue = m.get('allow_reissue');
      out.services.push({ path, allowReissue: reissue ? bool(r, reissue, `${what}.allow_reissue`) : false });
    });
  }
  const paths = out.services.map((s) => s.path);
  const dup = paths.find((p, i) => paths.indexOf(p) !== i);
  if (dup) r.fail(services?.value, `two services write to the same destination ${dup}`);
  return out;
}
