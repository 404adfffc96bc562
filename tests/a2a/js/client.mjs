// The JavaScript SDK's client against one A2A agent (tests/a2a/test_js_sdk.py runs it with node).
//
//   node client.mjs <base URL> <messageId> <contextId> <text> [sender]
//
// Resolves the agent card from <base URL>/.well-known/agent-card.json with the SDK's ClientFactory
// (default JSON-RPC transport), sends one text message with sendMessage (A2A 1.0 SendMessage), then
// reads the task back with getTask, and prints one JSON object on stdout:
//   {"card": <AgentCard JSON>, "sent": <Task or Message JSON>, "got": <Task JSON>}
// Any error is printed as {"error": "..."} with exit status 1.
//
// The card's URL is given whole (and the path argument empty): the SDK's resolver joins its default
// path "/.well-known/agent-card.json" to the base URL as an absolute path, which would drop the
// agent's path (/a2a/<agent>) from a base URL that has one.
import { AgentCard, Message, Role, Task } from '@a2a-js/sdk';
import { ClientFactory } from '@a2a-js/sdk/client';

const [base, messageId, contextId, text, sender] = process.argv.slice(2);
if (!base || !messageId || !contextId || text === undefined) {
  console.error('usage: node client.mjs <base URL> <messageId> <contextId> <text> [sender]');
  process.exit(2);
}

try {
  const client = await new ClientFactory().createFromUrl(`${base.replace(/\/+$/, '')}/.well-known/agent-card.json`, '');
  const card = await client.getAgentCard();
  const sent = await client.sendMessage(
    {
      message: {
        messageId,
        contextId,
        role: Role.ROLE_USER,
        parts: [{ content: { $case: 'text', value: text } }],
        metadata: sender ? { sender } : undefined,
      },
    },
    { signal: AbortSignal.timeout(10000) },
  );
  const isTask = typeof sent === 'object' && sent !== null && 'status' in sent;
  const got = isTask ? await client.getTask({ id: sent.id }, { signal: AbortSignal.timeout(10000) }) : null;
  console.log(JSON.stringify({
    card: AgentCard.toJSON(card),
    sent: isTask ? Task.toJSON(sent) : Message.toJSON(sent),
    got: got && Task.toJSON(got),
  }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
}
