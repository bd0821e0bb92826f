// Apollo Client 4 with GraphQLWsLink (graphql-ws underneath) for subscriptions: the event a
// mutation changes arrives, written into the normalised cache; a refused subscription reaches
// the app as a GraphQL error with its code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApolloClient, CombinedGraphQLErrors, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { awareness } from '../lib/apollo.mjs';
import * as ev from '../lib/eventide.mjs';

let organizer;
const wsClients = [];
before(async () => {
  organizer = await ev.login(ev.organizer);
});
after(async () => {
  await Promise.all(wsClients.map((c) => c.dispose()));
});

function newClient(token = '') {
  const ws = createClient({
    url: ev.wsURL,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
  });
  wsClients.push(ws);
  return new ApolloClient({
    link: new GraphQLWsLink(ws),
    cache: new InMemoryCache(),
    clientAwareness: awareness,
  });
}

test('eventUpdated over GraphQLWsLink receives the event after a mutation, and the cache holds it', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'Apollo ws event');
  const client = newClient(organizer.token);
  const sink = new ev.Sink();
  const sub = client
    .subscribe({ query: gql`subscription Watch($id: ID!) { eventUpdated(id: $id) { id title attendeeCount } }`, variables: { id: eventId } })
    .subscribe(sink);
  try {
    const { value, sent } = await ev.renameUntil(sink.first, eventId, organizer.token);
    assert.equal(value.error, undefined, String(value.error));
    assert.equal(value.data.eventUpdated.id, eventId);
    assert.ok(sent.includes(value.data.eventUpdated.title), `got ${value.data.eventUpdated.title}, sent ${sent}`);
    // Subscription data is normalised like any other: the Event entity is in the cache.
    const cached = client.cache.readFragment({ id: client.cache.identify({ __typename: 'Event', id: eventId }), fragment: gql`fragment T on Event { title }` });
    assert.ok(sent.includes(cached?.title), `cache holds ${JSON.stringify(cached)}`);

    // A registration (a count change) is the next value.
    const n = sink.values.length;
    const reg = await ev.register(eventId, organizer.token);
    assert.equal(reg.status, 'CONFIRMED');
    const counted = await ev.waitFor(() => sink.values.slice(n).find((x) => x.data?.eventUpdated?.attendeeCount === 1), 5000);
    assert.ok(counted, `no value with attendeeCount 1: ${JSON.stringify(sink.values.slice(n))}`);
    assert.equal(counted.data.eventUpdated.id, eventId);
  } finally {
    sub.unsubscribe();
  }
  assert.deepEqual(sink.errors, []);
});

test('securityEvents over GraphQLWsLink without a token: a GraphQL error UNAUTHENTICATED', async () => {
  const client = newClient();
  const sink = new ev.Sink();
  client.subscribe({ query: gql`subscription { securityEvents { id type } }` }).subscribe(sink);
  // Apollo Client 4 hands a subscription's GraphQL errors to the app as one value with `error`,
  // then completes.
  assert.equal(await ev.within(5000, 'the refusal', sink.ended), 'complete');
  assert.equal(sink.values.length, 1, `values: ${JSON.stringify(sink.values)}`);
  const seen = sink.values.map((v) => v.error);
  assert.ok(CombinedGraphQLErrors.is(seen[0]), `${seen[0]?.name}: ${seen[0]?.message}`);
  assert.equal(seen[0].errors[0].extensions.code, 'UNAUTHENTICATED');
});
