/**
 * agentEventId: the id both the agent and the proxy derive for an agent's
 * event. Always a version-8 UUID; the same for the same agent and key (an
 * event sent again keeps its id); never the same across agents or keys.
 */
import { describe, expect, it } from 'vitest';
import { agentEventId } from '../../src/audit/prepare.js';

const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('agentEventId', () => {
  it('is a version-8 UUID for the spool’s keys and for any other key', () => {
    for (const key of ['AbC-_9xyz:1', 'p:9007199254740991', 'p:0', 'p:01', 'no colon', '', 'a:b:c', 'é:1'])
      expect(agentEventId('east', key)).toMatch(UUID_V8);
  });

  it('is the same for the same agent and key, and differs across agents, processes and counts', () => {
    const ids = new Set<string>();
    for (const agent of ['east', 'west'])
      for (const proc of ['p1', 'p2'])
        for (let n = 1; n <= 300; n++) {
          const id = agentEventId(agent, `${proc}:${n}`);
          expect(agentEventId(agent, `${proc}:${n}`)).toBe(id);
          ids.add(id);
        }
    expect(ids.size).toBe(2 * 2 * 300);
  });

  it('a key written another way (leading zeros, other text) is hashed whole, so it cannot take a spool key’s id', () => {
    const spool = agentEventId('east', 'p1:7');
    expect(agentEventId('east', 'p1:07')).not.toBe(spool);
    expect(agentEventId('east', 'p1:7 ')).not.toBe(spool);
    expect(agentEventId('east\np1', '7')).not.toBe(spool);
  });
});
