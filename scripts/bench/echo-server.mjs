#!/usr/bin/env node
/**
 * A minimal stdio MCP server with one tool, `echo`, that answers exactly like
 * the `echo` tool of @modelcontextprotocol/server-everything ("Echo: " + message).
 *
 * Why it exists: server-everything reads stdin with the SDK's default 10 MiB
 * line limit, so it cannot take a 16 MiB argument at all — not even directly.
 * This server is the same SDK code with the limit raised to 64 MiB, so the
 * 16 MiB row measures the transport, not that limit. Used for both paths.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const server = new Server({ name: 'bench-echo', version: '1.0.0' }, { capabilities: { tools: {} } });

server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: [
    {
      name: 'echo',
      description: 'Echoes back the input',
      inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
    },
  ],
}));

server.setRequestHandler(CallToolRequestSchema, async (req) => {
  if (req.params.name !== 'echo') throw new Error(`unknown tool ${req.params.name}`);
  const message = req.params.arguments?.message;
  if (typeof message !== 'string') throw new Error('message must be a string');
  return { content: [{ type: 'text', text: `Echo: ${message}` }] };
});

await server.connect(new StdioServerTransport(process.stdin, process.stdout, { maxBufferSize: 64 * 1024 * 1024 }));
// Exit when the client goes away (stdin EOF), like server-everything does.
process.stdin.on('end', () => process.exit(0));
