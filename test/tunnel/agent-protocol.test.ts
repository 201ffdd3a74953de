import { describe, expect, it } from 'vitest';
import {
  agentOfToken,
  decodeAgentFrame,
  peerFromWire,
  peerToWire,
  TOKEN_SEPARATOR,
} from '../../src/tunnel/agent-protocol.js';

const peer = {
  user: 'alice',
  roles: ['dev'],
  bot: { name: 'ci', generation: 2 },
  notAfter: new Date('2030-01-01T00:00:00Z'),
  serial: '01',
  fingerprint256: 'AA',
  remoteAddr: '127.0.0.1:5',
};

describe('the agent protocol', () => {
  it('a peer survives the wire', () => {
    expect(peerFromWire(JSON.parse(JSON.stringify(peerToWire(peer))))).toEqual(peer);
  });

  it('a malformed peer is refused, not half-read', () => {
    for (const bad of [
      null,
      'alice',
      { ...peerToWire(peer), user: 1 },
      { ...peerToWire(peer), roles: 'dev' },
      { ...peerToWire(peer), roles: ['dev', 2] },
      { ...peerToWire(peer), notAfter: 'soon' },
      { ...peerToWire(peer), bot: { name: 'ci' } },
    ])
      expect(peerFromWire(bad)).toBeUndefined();
  });

  it('frames: JSON objects with a string type, anything else is not a frame', () => {
    expect(decodeAgentFrame('{"type":"dial","count":1}')).toEqual({ type: 'dial', count: 1 });
    for (const bad of ['', 'null', '[]', '{"type":1}', '{', '"welcome"']) expect(decodeAgentFrame(bad)).toBeUndefined();
  });

  it('a resume token names its agent; a token without one names none', () => {
    expect(agentOfToken(`east${TOKEN_SEPARATOR}abc`)).toBe('east');
    expect(agentOfToken('abc')).toBeUndefined();
    expect(agentOfToken(`${TOKEN_SEPARATOR}abc`)).toBeUndefined();
  });
});
