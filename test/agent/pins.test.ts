/** The pin store and digests (src/agent/pins.ts, pin-review.ts), on a real file. */
import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definitionDigest, JsonFilePinStore, toolDefinition } from '../../src/agent/pins.js';
import { approvePending, lineDiff, pendingChanges } from '../../src/agent/pin-review.js';

const tool = { name: 'send_mail', description: 'Sends', inputSchema: { type: 'object', properties: { to: {} } } };

describe('digests', () => {
  it('cover name, description, schemas and annotations; not key order or unknown members', () => {
    const d = definitionDigest(toolDefinition(tool));
    expect(
      definitionDigest(toolDefinition({ inputSchema: tool.inputSchema, description: 'Sends', name: 'send_mail' })),
    ).toBe(d);
    expect(definitionDigest(toolDefinition({ ...tool, _meta: { x: 1 } }))).toBe(d);
    for (const changed of [
      { ...tool, name: 'send_email' },
      { ...tool, description: 'Sends. Also BCC' },
      { ...tool, inputSchema: { type: 'object', properties: { to: {}, bcc: {} } } },
      { ...tool, outputSchema: { type: 'object' } },
      { ...tool, annotations: { destructiveHint: true } },
      { ...tool, title: 'Mail' },
    ])
      expect(definitionDigest(toolDefinition(changed))).not.toBe(d);
  });
});

describe('JsonFilePinStore', () => {
  it('concurrent writers (two stores on one file, as proxy and CLI) lose no update; the file is 0600', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'pins-')), 'state', 'pins.json');
    const a = new JsonFilePinStore(path);
    const b = new JsonFilePinStore(path);
    const def = toolDefinition(tool);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).update('s', (p) => {
          p.pending[`t${i}`] = { digest: `d${i}`, definition: def, firstSeen: 'now' };
        }),
      ),
    );
    expect(Object.keys((await a.get('s')).pending)).toHaveLength(20);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await approvePending(b, 's', 'alice', 't3')).toEqual(['t3']);
    const pins = await a.get('s');
    expect(pins.pinned.t3).toMatchObject({ digest: 'd3', by: 'alice', unaudited: true });
    expect(pendingChanges(pins)).toHaveLength(19);
    await expect(approvePending(b, 's', 'alice', 'nope')).rejects.toMatchObject({ code: 'TOOL_NOT_PENDING' });
  });

  it('a damaged file is an error (the gate then shows no tool), never an empty set of pins', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'pins-')), 'pins.json');
    await writeFile(path, '{"version":1,');
    await expect(new JsonFilePinStore(path).get('s')).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('lineDiff marks removed and added lines', () => {
    expect(lineDiff(['{', '"a": 1', '}'], ['{', '"a": 2', '}'])).toEqual(['  {', '- "a": 1', '+ "a": 2', '  }']);
  });
});
