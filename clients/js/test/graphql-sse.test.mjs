// The graphql-sse client in distinct connections mode: each subscription its own
// `POST /graphql` answered as text/event-stream.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-sse';
import * as ev from '../lib/eventide.mjs';

let organizer;
before(async () => {
  organizer = await ev.login(ev.organizer);
});

// sseClient records the content type of each answer, to show the stream is really SSE.
function sseClient(token = '') {
  const contentTypes = [];
  const client = createClient({
    url: ev.httpURL,
    singleConnection: false,
    retryAttempts: 0,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    fetchFn: async (input, init) => {
      const res = await fetch(input, init);
      contentTypes.push(res.headers.get('content-type'));
      return res;
    },
  });
  return { client, contentTypes };
}

test('eventUpdated over graphql-sse receives the renamed event, then completes when disposed', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'graphql-sse event');
  const { client, contentTypes } = sseClient(organizer.token);
  const sink = new ev.Sink();
  const dispose = client.subscribe(
    { query: 'subscription Watch($id: ID!) { eventUpdated(id: $id) { id title attendeeCount } }', variables: { id: eventId } },
    sink,
  );
  try {
    const { value, sent } = await ev.renameUntil(sink.first, eventId, organizer.token);
    assert.equal(value.errors, undefined, JSON.stringify(value.errors));
    assert.equal(value.data.eventUpdated.id, eventId);
    assert.ok(sent.includes(value.data.eventUpdated.title), `got ${value.data.eventUpdated.title}, sent ${sent}`);
    assert.deepEqual(contentTypes.map((c) => c.split(';')[0]), ['text/event-stream']);
  } finally {
    dispose();
  }
  assert.equal(await ev.within(2000, 'complete after dispose', sink.ended), 'complete');
  client.dispose();
  assert.deepEqual(sink.errors, []);
});

test('securityEvents over graphql-sse without a token: UNAUTHENTICATED, then the stream ends', async () => {
  const { client } = sseClient();
  const sink = new ev.Sink();
  client.subscribe({ query: 'subscription { securityEvents { id } }' }, sink);
  const how = await ev.within(5000, 'the refusal', sink.ended);
  client.dispose();
  assert.equal(how, 'complete', `ended with ${how}: ${JSON.stringify(sink.errors)}`);
  assert.equal(sink.values.length, 1, JSON.stringify(sink.values));
  assert.equal(sink.values[0].errors[0].extensions.code, 'UNAUTHENTICATED');
  assert.ok(sink.values[0].data == null);
});
