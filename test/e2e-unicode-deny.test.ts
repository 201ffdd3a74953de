/**
 * A deny cannot be stepped around with Unicode: names that an upstream's
 * case mapping or normalisation (toUpperCase, Python's upper()/casefold(),
 * NFKC) would turn into a denied tool are denied too. End to end through the
 * raw bridge against the real server-filesystem: the proxy answers -32602,
 * the denial is audited, and the file was not written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster, FILESYSTEM } from './helpers/cluster.js';
import { RawBridge, INIT } from './helpers/raw-bridge.js';
import { compilePattern, foldForDeny } from '../src/rbac/patterns.js';

let cluster: TestCluster;
let sample: string;
let identity: string;
const ROLE = {
  kind: 'role',
  version: 'v8',
  metadata: { name: 'all-but-writes' },
  spec: {
    allow: { app_labels: { '*': '*' }, mcp: { tools: ['*'] } },
    deny: { mcp: { tools: ['write_file', 'search_files', '^edit_.*$', 'move_*'] } },
  },
};

// Each spelling folds to a denied name under some upstream's case mapping.
const ATTEMPTS: Array<[string, string]> = [
  ['dotless i (U+0131)', 'wr\u0131te_file'],
  ['dotted capital I (U+0130)', 'WR\u0130TE_FILE'],
  ['long s (U+017F)', '\u017Fearch_files'],
  ['a fullwidth letter in a glob', '\uFF4Dove_file'],
  ['fullwidth letters', '\uFF57\uFF52\uFF49\uFF54\uFF45_file'],
  ['the fi ligature', 'write_\uFB01le'],
  ['a combining mark', 'wri\u0301te_file'],
  ['a regex deny with dotless i', 'ed\u0131t_file'],
];

beforeAll(async () => {
  cluster = await TestCluster.start({ servers: [], roles: [ROLE], config: { audit: { path: './audit.jsonl' } } });
  sample = join(cluster.dir, 'sample');
  await mkdir(sample);
  await cluster.writeConfig({
    servers: [{ name: 'files', labels: { env: 'dev' }, command: process.execPath, args: [FILESYSTEM, sample] }],
  });
  cluster.proxy!.kill('SIGHUP');
  await cluster.waitForLog(/reloaded .*: 1 servers?/);
  identity = await cluster.issue('mallory', ['all-but-writes']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('the fold', () => {
  it.each(ATTEMPTS)('%s is denied by the policy patterns', (_name, tool) => {
    const denies = ROLE.spec.deny.mcp.tools.map((t) => compilePattern(t, 'deny'));
    expect(denies.some((p) => p.test(tool))).toBe(true);
  });

  it('ASCII names are only lower-cased; allow patterns stay exact', () => {
    expect(foldForDeny('Read_File')).toBe('read_file');
    expect(compilePattern('read_file', 'allow').test('read_f\u0131le')).toBe(false);
    expect(compilePattern('write_file', 'deny').test('read_file')).toBe(false);
  });
});

describe('end to end against server-filesystem', () => {
  it('every spelling is refused by the proxy with -32602, audited, and no file is written', async () => {
    const b = RawBridge.spawn(cluster.connectArgs('files', identity));
    b.send(INIT(1));
    await b.response(1);
    b.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    let id = 10;
    const sent: Array<{ id: number; tool: string }> = [];
    for (const [, tool] of ATTEMPTS) {
      const target = join(sample, `owned-${id}.txt`);
      b.send({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: {
          name: tool,
          arguments: { path: target, content: 'pwned', source: target, destination: `${target}.moved`, edits: [] },
        },
      });
      sent.push({ id, tool });
      id++;
    }
    // The same names written with JSON \u escapes are decoded first, then judged.
    b.write(
      `{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"wr\\u0131te_file","arguments":{"path":${JSON.stringify(join(sample, 'escaped.txt'))},"content":"pwned"}}}\n`,
    );
    sent.push({ id: 99, tool: 'wr\u0131te_file' });
    for (const { id: rid } of sent) {
      const r = await b.response(rid);
      expect(r.error, JSON.stringify(r)).toMatchObject({ code: -32602, data: { code: 'TOOL_DENIED' } });
    }
    // The legitimate read tool still works in the same session.
    b.send({
      jsonrpc: '2.0',
      id: 100,
      method: 'tools/call',
      params: { name: 'list_directory', arguments: { path: sample } },
    });
    expect((await b.response(100)).result).toBeDefined();
    await b.end();

    for (const { id: rid } of sent) expect(existsSync(join(sample, `owned-${rid}.txt`))).toBe(false);
    expect(existsSync(join(sample, 'escaped.txt'))).toBe(false);
    const events = (await readFile(join(cluster.dir, 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const { tool } of sent) {
      expect(events.some((e) => e.method === 'tools/call' && e.tool === tool && e.outcome === 'denied')).toBe(true);
    }
  });
});
