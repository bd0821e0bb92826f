// The graphql-ws client (graphql-transport-ws): a subscription that receives the change a mutation
// makes and completes when the client ends it; admin subscriptions refused with their codes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import * as ev from '../lib/eventide.mjs';

let organizer;
const clients = [];
before(async () => {
  organizer = await ev.login(ev.organizer);
});
after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

// wsClient opens a graphql-ws client, signed in with token when given, that does not retry.
function wsClient(token = '') {
  const c = createClient({
    url: ev.wsURL,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
  clients.push(c);
  return c;
}

const EVENT_UPDATED = 'subscription Watch($id: ID!) { eventUpdated(id: $id) { id title attendeeCount } }';

test('subscribe to eventUpdated, receive the renamed event, complete from the client', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'graphql-ws event');
  const client = wsClient(organizer.token);
  let acked = 0;
  client.on('connected', () => acked++);
  const sink = new ev.Sink();
  const unsubscribe = client.subscribe({ query: EVENT_UPDATED, variables: { id: eventId } }, sink);

  const { value, sent } = await ev.renameUntil(sink.first, eventId, organizer.token);
  assert.equal(acked, 1, 'connection_init with the token was acknowledged');
  assert.equal(value.errors, undefined, JSON.stringify(value.errors));
  assert.equal(value.data.eventUpdated.id, eventId);
  assert.ok(sent.includes(value.data.eventUpdated.title), `got title ${value.data.eventUpdated.title}, sent ${sent}`);
  assert.equal(value.data.eventUpdated.attendeeCount, 0);

  // The next change comes on the same subscription.
  const n = sink.values.length;
  await ev.rename(eventId, 'Last title', organizer.token);
  const last = await ev.waitFor(() => sink.values.slice(n).find((v) => v.data?.eventUpdated?.title === 'Last title'), 5000);
  assert.ok(last, `no value with the last title: ${JSON.stringify(sink.values.slice(n))}`);
  assert.equal(last.data.eventUpdated.id, eventId);

  unsubscribe();
  assert.equal(await ev.within(2000, 'complete', sink.ended), 'complete');
  assert.deepEqual(sink.errors, []);
});

test('securityEvents without a token is refused with UNAUTHENTICATED, and as an organizer with FORBIDDEN', async () => {
  const SECURITY = 'subscription { securityEvents { id type } }';
  for (const [token, code] of [
    ['', 'UNAUTHENTICATED'],
    [organizer.token, 'FORBIDDEN'],
  ]) {
    const sink = new ev.Sink();
    wsClient(token).subscribe({ query: SECURITY }, sink);
    // As graphql-ws's own server does for an error in creating the stream: one result with the
    // error and no data, then complete.
    const how = await ev.within(5000, `the refusal ${code}`, sink.ended);
    assert.equal(how, 'complete', `ended with ${how}: ${JSON.stringify(sink.errors)}`);
    assert.equal(sink.values.length, 1, JSON.stringify(sink.values));
    const [res] = sink.values;
    assert.equal(res.data, null);
    assert.equal(res.errors.length, 1);
    assert.equal(res.errors[0].extensions?.code, code, JSON.stringify(res.errors));
    assert.deepEqual(res.errors[0].path, ['securityEvents']);
  }
});

test('the admin receives a security event over graphql-ws', async () => {
  const admin = await ev.login(ev.admin);
  const sink = new ev.Sink();
  const unsubscribe = wsClient(admin.token).subscribe(
    { query: 'subscription { securityEvents { type email severity } }' },
    sink,
  );
  // Failed logins for addresses no one has, until one is seen (the first may come before the
  // server has taken the subscription).
  const tried = [];
  let got;
  for (let i = 0; i < 10 && !got; i++) {
    const email = ev.uniqueEmail('nobody');
    tried.push(email);
    const r = await ev.gql('mutation($e: String!) { login(email: $e, password: "wrong-password") { token } }', { e: email });
    assert.equal(r.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    got = await ev.waitFor(
      () => sink.values.map((v) => v.data?.securityEvents).find((e) => e?.type === 'LOGIN_FAILED' && tried.includes(e.email)),
      500,
    );
  }
  assert.ok(got, `no LOGIN_FAILED event for ${tried}; got ${JSON.stringify(sink.values)}`);
  assert.equal(got.type, 'LOGIN_FAILED');
  unsubscribe();
});
