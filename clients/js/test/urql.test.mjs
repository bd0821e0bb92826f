// urql 6 (@urql/core): the default exchanges for a query (GET, urql's default within the URL
// limit) and a mutation (POST) answered as plain JSON although urql's Accept also lists
// text/event-stream; subscriptions through subscriptionExchange over graphql-ws, and through the
// fetch exchange itself (`fetchSubscriptions: true`) over Server-Sent Events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, cacheExchange, fetchExchange, subscriptionExchange, gql } from '@urql/core';
import { createClient as createWSClient } from 'graphql-ws';
import WebSocket from 'ws';
import * as ev from '../lib/eventide.mjs';

let organizer;
const wsClients = [];
before(async () => {
  organizer = await ev.login(ev.organizer);
});
after(async () => {
  await Promise.all(wsClients.map((c) => c.dispose()));
});

// recordingFetch keeps each request's method and Accept and each answer's status and type.
function recordingFetch() {
  const calls = [];
  const f = async (input, init = {}) => {
    const res = await fetch(input, init);
    calls.push({
      method: init.method || 'GET',
      accept: new Headers(init.headers).get('accept'),
      status: res.status,
      contentType: res.headers.get('content-type'),
    });
    return res;
  };
  return { fetch: f, calls };
}

function newClient({ token = '', exchanges = [cacheExchange, fetchExchange], ...options } = {}) {
  const rec = recordingFetch();
  const client = new Client({
    url: ev.httpURL,
    exchanges,
    fetch: rec.fetch,
    fetchOptions: () => (token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    ...options,
  });
  return { client, calls: rec.calls };
}

// firstValue subscribes to a urql source and resolves with its first result; stop ends it.
function firstValue(source) {
  const results = [];
  let resolveFirst;
  const first = new Promise((resolve) => {
    resolveFirst = resolve;
  });
  const { unsubscribe } = source.subscribe((r) => {
    results.push(r);
    resolveFirst(r);
  });
  return { first, results, stop: unsubscribe };
}

test('a query and a mutation with the default exchanges get JSON, not a stream', async () => {
  const { client, calls } = newClient({ token: organizer.token });
  const q = await client
    .query(gql`query Venues($city: String) { venues(city: $city, first: 2) { totalCount edges { node { id name city } } } }`, { city: 'Lisbon' })
    .toPromise();
  assert.equal(q.error, undefined, String(q.error));
  assert.equal(q.data.venues.edges.length, 2);
  for (const e of q.data.venues.edges) assert.equal(e.node.city, 'Lisbon');

  const eventId = await ev.freshEvent(organizer.token, 'urql registration');
  const m = await client
    .mutation(gql`mutation Register($id: ID!) { registerForEvent(eventId: $id) { id status event { id attendeeCount } } }`, { id: eventId })
    .toPromise();
  assert.equal(m.error, undefined, String(m.error));
  assert.equal(m.data.registerForEvent.status, 'CONFIRMED');
  assert.equal(m.data.registerForEvent.event.id, eventId);
  assert.equal(m.data.registerForEvent.event.attendeeCount, 1);

  assert.deepEqual(calls.map((c) => c.method), ['GET', 'POST']);
  for (const c of calls) {
    assert.match(c.accept, /text\/event-stream/, 'urql lists text/event-stream in its Accept');
    assert.equal(c.status, 200);
    assert.match(c.contentType, /^application\/graphql-response\+json/, 'a single JSON answer, not an SSE stream');
  }
});

test('a urql mutation error carries its code (CombinedError.graphQLErrors)', async () => {
  const { client } = newClient();
  const m = await client
    .mutation(gql`mutation Register($id: ID!) { registerForEvent(eventId: $id) { id } }`, { id: 'nope' })
    .toPromise();
  assert.ok(m.error, 'an anonymous registration fails');
  assert.equal(m.error.networkError, undefined, String(m.error.networkError));
  assert.equal(m.error.graphQLErrors[0].extensions.code, 'UNAUTHENTICATED');
});

const WATCH = gql`subscription Watch($id: ID!) { eventUpdated(id: $id) { id title attendeeCount } }`;

test('subscriptionExchange over graphql-ws: eventUpdated after a mutation', async () => {
  const ws = createWSClient({
    url: ev.wsURL,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${organizer.token}` },
    retryAttempts: 0,
  });
  wsClients.push(ws);
  const { client } = newClient({
    token: organizer.token,
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
        },
      }),
    ],
  });
  const eventId = await ev.freshEvent(organizer.token, 'urql ws event');
  const sub = firstValue(client.subscription(WATCH, { id: eventId }));
  try {
    const { value, sent } = await ev.renameUntil(sub.first, eventId, organizer.token);
    assert.equal(value.error, undefined, String(value.error));
    assert.equal(value.data.eventUpdated.id, eventId);
    assert.ok(sent.includes(value.data.eventUpdated.title), `got ${value.data.eventUpdated.title}, sent ${sent}`);
  } finally {
    sub.stop();
  }
});

test('fetchSubscriptions: true: eventUpdated over Server-Sent Events from the fetch exchange', async () => {
  const { client, calls } = newClient({ token: organizer.token, fetchSubscriptions: true });
  const eventId = await ev.freshEvent(organizer.token, 'urql sse event');
  const sub = firstValue(client.subscription(WATCH, { id: eventId }));
  try {
    const { value, sent } = await ev.renameUntil(sub.first, eventId, organizer.token);
    assert.equal(value.error, undefined, String(value.error));
    assert.equal(value.data.eventUpdated.id, eventId);
    assert.ok(sent.includes(value.data.eventUpdated.title), `got ${value.data.eventUpdated.title}, sent ${sent}`);
  } finally {
    sub.stop();
  }
  assert.equal(calls.length, 1);
  assert.equal(calls[0].method, 'POST');
  assert.equal(calls[0].status, 200);
  assert.match(calls[0].contentType, /^text\/event-stream/);
});
