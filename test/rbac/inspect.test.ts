/**
 * The strict client-message check: well-formed JSON-RPC passes and is
 * classified; every parse-differential trick is refused (or, for `\u`
 * escapes, normalised to the decoded name the policy then judges).
 */
import { describe, expect, it } from 'vitest';
import { inspectClientMessage, MAX_NESTING } from '../../src/rbac/inspect.js';

const inspect = (text: string | Buffer) =>
  inspectClientMessage(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
const call = (params: string, id = '7') =>
  inspect(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${params}}`);

describe('well-formed messages pass and are classified', () => {
  it('a tools/call request, with its tool name', () => {
    expect(call('{"name":"read_file","arguments":{"path":"/tmp/a"}}')).toEqual({
      kind: 'request',
      id: 7,
      method: 'tools/call',
      params: { name: 'read_file', arguments: { path: '/tmp/a' } },
      toolName: 'read_file',
    });
  });
  it('other requests, with and without params; string ids', () => {
    expect(inspect('{"jsonrpc":"2.0","id":"a-1","method":"tools/list"}')).toEqual({
      kind: 'request',
      id: 'a-1',
      method: 'tools/list',
    });
    expect(inspect('{"jsonrpc":"2.0","id":0,"method":"tools/list","params":{"cursor":"abc"}}')).toEqual({
      kind: 'request',
      id: 0,
      method: 'tools/list',
      params: { cursor: 'abc' },
    });
    expect(inspect(' \t{"method":"ping","id":-3,"jsonrpc":"2.0"} ')).toEqual({
      kind: 'request',
      id: -3,
      method: 'ping',
    });
  });
  it('notifications', () => {
    expect(inspect('{"jsonrpc":"2.0","method":"notifications/initialized"}')).toEqual({
      kind: 'notification',
      method: 'notifications/initialized',
    });
    expect(
      inspect('{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}'),
    ).toEqual({
      kind: 'notification',
      method: 'notifications/cancelled',
      params: { requestId: 3, reason: 'x' },
    });
  });
  it('responses to server requests, success and error (an error may have id null)', () => {
    expect(inspect('{"jsonrpc":"2.0","id":"s1","result":{"roots":[]}}')).toEqual({
      kind: 'response',
      id: 's1',
      isError: false,
    });
    expect(inspect('{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no","data":{"x":1}}}')).toEqual({
      kind: 'response',
      id: 4,
      isError: true,
    });
    expect(inspect('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}')).toEqual({
      kind: 'response',
      id: null,
      isError: true,
    });
  });
  it('keys and brackets inside string values are data, not structure', () => {
    const r = call(
      '{"name":"read_file","arguments":{"content":"\\"name\\":\\"write_file\\",\\"name\\":{[,]}\\\\","name2":"}"}}',
    );
    expect(r).toMatchObject({ kind: 'request', toolName: 'read_file' });
  });
});

describe('parse-differential tricks', () => {
  it('duplicate keys: params.name (the classic read_file/write_file pair) is refused', () => {
    expect(call('{"name":"read_file","name":"write_file"}')).toEqual({
      kind: 'invalid',
      id: 7,
      code: -32600,
      reason: 'duplicate key "name" in "params"',
    });
    expect(call('{"name":"write_file","arguments":{},"name":"read_file"}')).toMatchObject({
      kind: 'invalid',
      reason: 'duplicate key "name" in "params"',
    });
  });
  it('duplicate keys hidden by escapes are found after unescaping', () => {
    expect(call('{"name":"read_file","na\\u006de":"write_file"}')).toMatchObject({
      kind: 'invalid',
      reason: 'duplicate key "name" in "params"',
    });
    expect(call('{"n\\u0061me":"read_file","\\u006eame":"write_file"}')).toMatchObject({
      kind: 'invalid',
      reason: 'duplicate key "name" in "params"',
    });
  });
  it('duplicate top-level members (method, params, id) are refused; with two ids the answer carries id null', () => {
    expect(
      inspect('{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"write_file"}}'),
    ).toMatchObject({ kind: 'invalid', id: 1, code: -32600, reason: 'duplicate key "method" in the message' });
    expect(
      inspect(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"},"params":{"name":"write_file"}}',
      ),
    ).toMatchObject({ kind: 'invalid', reason: 'duplicate key "params" in the message' });
    expect(inspect('{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}')).toEqual({
      kind: 'invalid',
      id: null,
      code: -32600,
      reason: 'duplicate key "id" in the message',
    });
  });
  it('duplicate keys at any depth (arguments, arrays of objects) are refused', () => {
    expect(call('{"name":"read_file","arguments":{"path":"/safe","path":"/etc/shadow"}}')).toMatchObject({
      kind: 'invalid',
      reason: 'duplicate key "path" in "params.arguments"',
    });
    expect(call('{"name":"x","arguments":{"list":[{"a":1},{"a":1,"a":2}]}}')).toMatchObject({
      kind: 'invalid',
      reason: 'duplicate key "a" in "params.arguments.list[]"',
    });
  });
  it('non-canonical key case at the message and params level is refused', () => {
    expect(call('{"name":"read_file","Name":"write_file"}')).toMatchObject({
      kind: 'invalid',
      reason: 'keys "name" and "Name" in "params" differ only in letter case',
    });
    expect(call('{"Name":"write_file"}')).toMatchObject({
      kind: 'invalid',
      code: -32600,
      reason: 'key "Name" in "params" must be written "name"',
    });
    expect(call('{"NAME":"write_file","arguments":{}}')).toMatchObject({
      kind: 'invalid',
      reason: 'key "NAME" in "params" must be written "name"',
    });
    expect(call('{"name":"read_file","Arguments":{}}')).toMatchObject({
      kind: 'invalid',
      reason: 'key "Arguments" in "params" must be written "arguments"',
    });
    expect(
      inspect('{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"write_file"}}'),
    ).toMatchObject({
      kind: 'invalid',
      reason: 'keys "method" and "Method" in the message differ only in letter case',
    });
    expect(inspect('{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"write_file"}}')).toMatchObject({
      kind: 'invalid',
      reason: 'key "Method" in the message must be written "method"',
    });
    expect(
      inspect(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"write_file"},"params":{"name":"read_file"}}',
      ),
    ).toMatchObject({ kind: 'invalid', reason: 'key "Params" in the message must be written "params"' });
    expect(inspect('{"jsonrpc":"2.0","ID":1,"id":2,"method":"ping"}')).toMatchObject({ kind: 'invalid', id: null });
  });
  it('Unicode case folding that lenient decoders apply (ſ for s, K for k) is refused too', () => {
    expect(
      inspect(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"},"paramſ":{"name":"write_file"}}',
      ),
    ).toMatchObject({
      kind: 'invalid',
      reason: 'keys "params" and "paramſ" in the message differ only in letter case',
    });
    expect(call('{"name":"read_file","argumentſ":{}}')).toMatchObject({
      kind: 'invalid',
      reason: 'key "argumentſ" in "params" must be written "arguments"',
    });
  });
  it("inside arguments, keys differing in case are a tool's business and pass", () => {
    expect(call('{"name":"read_file","arguments":{"path":"a","Path":"b"}}')).toMatchObject({
      kind: 'request',
      toolName: 'read_file',
    });
  });
  it('\\u escapes in the tool name are decoded (JSON semantics): the decoded name is what policy judges', () => {
    expect(call('{"name":"wri\\u0074e_file"}')).toMatchObject({ kind: 'request', toolName: 'write_file' });
    expect(call('{"name":"\\u0072\\u0065\\u0061\\u0064_file"}')).toMatchObject({
      kind: 'request',
      toolName: 'read_file',
    });
    expect(
      inspect('{"jsonrpc":"2.0","id":1,"method":"tools\\/c\\u0061ll","params":{"name":"write_file"}}'),
    ).toMatchObject({ kind: 'request', method: 'tools/call', toolName: 'write_file' });
  });
  it('escapes that decode to invisible, control or broken characters in the tool name are refused', () => {
    for (const name of [
      'write_file\\u0000',
      'write_file\\n',
      ' write_file',
      'write_file\\t',
      'write\\u200b_file',
      '\\u202ewrite_file',
      'write_file\\u00a0',
      '\\ufeffwrite_file',
      'write_file\\ud800',
      '\\udc00write_file',
      'write\\u2028file',
    ]) {
      expect(call(`{"name":"${name}"}`)).toMatchObject({
        kind: 'invalid',
        id: 7,
        code: -32602,
        reason: expect.stringContaining('control or invisible characters') as unknown,
      });
    }
    // A real astral character (a surrogate pair) is fine.
    expect(call('{"name":"emoji_\\ud83d\\ude00"}')).toMatchObject({ kind: 'request', toolName: 'emoji_😀' });
  });
  it('JSON-RPC batches are refused, whatever they contain', () => {
    const batch =
      '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file"}},{"jsonrpc":"2.0","id":2,"method":"ping"}]';
    expect(inspect(batch)).toEqual({
      kind: 'invalid',
      id: null,
      code: -32600,
      reason: expect.stringContaining('JSON-RPC batches are not supported') as unknown,
    });
    expect(inspect('[]')).toMatchObject({ kind: 'invalid', code: -32600 });
  });
  it('method names that are case or whitespace variants of an MCP method are refused', () => {
    expect(inspect('{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"write_file"}}')).toMatchObject({
      kind: 'invalid',
      reason: 'method "Tools/Call" must be written "tools/call"',
    });
    expect(inspect('{"jsonrpc":"2.0","id":1,"method":"TOOLS/CALL","params":{"name":"write_file"}}')).toMatchObject({
      kind: 'invalid',
      code: -32600,
    });
    expect(inspect('{"jsonrpc":"2.0","id":1,"method":"tools/call ","params":{"name":"write_file"}}')).toMatchObject({
      kind: 'invalid',
      reason: 'method contains spaces, control or invisible characters',
    });
    expect(
      inspect('{"jsonrpc":"2.0","id":1,"method":"tools/call\\u0000","params":{"name":"write_file"}}'),
    ).toMatchObject({ kind: 'invalid', code: -32600 });
  });
});

describe('what a line-based server would read differently, and requests without an id', () => {
  it('a raw LF or CR anywhere (legal JSON whitespace) is refused: a stdio server would read a second message', () => {
    const hidden =
      '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":\n{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_file","arguments":{}}}\n}}';
    expect(inspect(hidden)).toMatchObject({
      kind: 'invalid',
      id: 1,
      code: -32600,
      reason: expect.stringMatching(/raw line break/) as string,
    });
    expect(inspect('{"jsonrpc":"2.0","id":3,"method":"ping"}\r\n')).toMatchObject({
      kind: 'invalid',
      id: 3,
      code: -32600,
    });
    expect(inspect('{"jsonrpc":"2.0",\r"id":4,"method":"ping"}')).toMatchObject({
      kind: 'invalid',
      id: 4,
      code: -32600,
    });
    // Escaped inside a string it is data, and fine.
    expect(
      inspect(
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"w","arguments":{"content":"a\\nb\\r"}}}',
      ),
    ).toMatchObject({ kind: 'request', id: 5 });
  });
  it('a request method sent as a notification (no id) is refused; notifications/* pass', () => {
    for (const method of ['tools/call', 'tools/list', 'ping', 'initialize', 'x-custom/thing']) {
      expect(
        inspect(`{"jsonrpc":"2.0","method":"${method}","params":{"name":"write_file","arguments":{}}}`),
        method,
      ).toMatchObject({
        kind: 'invalid',
        id: null,
        code: -32600,
        reason: expect.stringMatching(/needs an id/) as string,
      });
    }
    expect(inspect('{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}')).toMatchObject({
      kind: 'notification',
    });
  });
});

describe('tools/call without a usable name is refused with -32602 (like a denial)', () => {
  it.each([
    ['{}', 'tools/call params.name is missing'],
    ['{"arguments":{}}', 'tools/call params.name is missing'],
    ['{"name":""}', 'tools/call params.name is empty'],
    ['{"name":null}', 'tools/call params.name must be a string'],
    ['{"name":42}', 'tools/call params.name must be a string'],
    ['{"name":["write_file"]}', 'tools/call params.name must be a string'],
    ['{"name":{"toString":"write_file"}}', 'tools/call params.name must be a string'],
    ['{"name":"read_file","arguments":[1]}', 'tools/call params.arguments must be an object'],
    ['{"name":"read_file","arguments":null}', 'tools/call params.arguments must be an object'],
  ])('params %s', (params, reason) => {
    expect(call(params)).toEqual({ kind: 'invalid', id: 7, code: -32602, reason });
  });
  it('no params at all', () => {
    expect(inspect('{"jsonrpc":"2.0","id":"x","method":"tools/call"}')).toEqual({
      kind: 'invalid',
      id: 'x',
      code: -32602,
      reason: 'tools/call needs params with the tool name',
    });
  });
});

describe('everything else that is not well-formed JSON-RPC', () => {
  it.each([
    ['not JSON', 'nope', -32700, null],
    ['empty', '', -32700, null],
    ['two values', '{"jsonrpc":"2.0","method":"ping","id":1} {"x":1}', -32700, null],
    ['a number', '42', -32600, null],
    ['null', 'null', -32600, null],
    ['no jsonrpc', '{"id":1,"method":"ping"}', -32600, 1],
    ['jsonrpc 1.0', '{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600, 1],
    ['unknown member', '{"jsonrpc":"2.0","id":1,"method":"ping","extra":true}', -32600, 1],
    ['params an array', '{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}', -32600, 1],
    ['params a string', '{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}', -32600, 1],
    ['method not a string', '{"jsonrpc":"2.0","id":1,"method":5}', -32600, 1],
    ['empty method', '{"jsonrpc":"2.0","id":1,"method":""}', -32600, 1],
    ['request id null', '{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600, null],
    ['fractional id', '{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, null],
    ['unsafe integer id', '{"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"}', -32600, null],
    ['boolean id', '{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, null],
    ['method and result', '{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}', -32600, 1],
    ['neither method nor id', '{"jsonrpc":"2.0","result":{}}', -32600, null],
    ['result and error', '{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}', -32600, 1],
    ['bad error object', '{"jsonrpc":"2.0","id":1,"error":"boom"}', -32600, 1],
    ['success with id null', '{"jsonrpc":"2.0","id":null,"result":{}}', -32600, null],
  ])('%s', (_name, text, code, id) => {
    expect(inspect(text)).toMatchObject({ kind: 'invalid', code, id });
  });

  it('bytes that are not UTF-8 are refused rather than repaired (another decoder could read them differently)', () => {
    const bytes = Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('_file"}}'),
    ]);
    expect(inspect(bytes)).toEqual({
      kind: 'invalid',
      id: null,
      code: -32700,
      reason: 'the message is not valid UTF-8',
    });
    // An overlong encoding of "/" (0xC0 0xAF).
    expect(
      inspect(
        Buffer.concat([
          Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools'),
          Buffer.from([0xc0, 0xaf]),
          Buffer.from('call"}'),
        ]),
      ),
    ).toMatchObject({ kind: 'invalid', code: -32700 });
  });
  it('a byte-order mark is refused', () => {
    expect(
      inspect(
        Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}')]),
      ),
    ).toMatchObject({ kind: 'invalid', code: -32700, reason: 'the message starts with a byte-order mark' });
  });
  it(`nesting deeper than ${MAX_NESTING} levels is refused; up to it is fine`, () => {
    const nested = (n: number) =>
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":${'['.repeat(n)}${']'.repeat(n)}}}}`;
    expect(inspect(nested(MAX_NESTING - 3))).toMatchObject({ kind: 'request' });
    expect(inspect(nested(MAX_NESTING))).toMatchObject({
      kind: 'invalid',
      code: -32600,
      reason: `nesting is deeper than ${MAX_NESTING} levels`,
    });
    expect(inspect(nested(100_000))).toMatchObject({ kind: 'invalid', code: -32600 });
  });
});

describe('large messages (the check runs on every message, 16 MiB ones included)', () => {
  it('a 16 MiB argument full of escaped quotes and backslashes passes, with its name intact', () => {
    const chunk = '\\"name\\":\\"write_file\\" \\\\ {[,]} ';
    const content = chunk.repeat(Math.ceil((16 * 1024 * 1024) / chunk.length));
    const r = call(`{"name":"write_file","arguments":{"path":"/tmp/x","content":"${content}"}}`);
    expect(r).toMatchObject({ kind: 'request', toolName: 'write_file' });
  });
  it('a duplicate key after 16 MiB of other keys is found', () => {
    const keys = Array.from({ length: 400_000 }, (_, i) => `"k${i}":${i}`).join(',');
    const text = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{${keys},"padding":"${'x'.repeat(12 * 1024 * 1024)}"},"name":"write_file"}}`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(16 * 1024 * 1024);
    expect(inspect(text)).toMatchObject({ kind: 'invalid', reason: 'duplicate key "name" in "params"' });
    expect(inspect(text.replace(',"name":"write_file"}}', '}}'))).toMatchObject({
      kind: 'request',
      toolName: 'read_file',
    });
  });
});
