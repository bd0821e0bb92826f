// Apollo Client 4 over HttpLink alone (no websocket link): a subscription goes out as a POST with
// Apollo's multipart subscription Accept and its events come back as parts of one multipart/mixed
// body; a query with @defer (with the Defer20220824Handler that sends the deferSpec Accept) is
// answered in parts too, the observable seeing the initial part before the complete result.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { CombinedGraphQLErrors, gql } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { Client, fetchExchange } from '@urql/core';
import { newClient, recordingFetch } from '../lib/apollo.mjs';
import * as ev from '../lib/eventide.mjs';

let organizer;
before(async () => {
  organizer = await ev.login(ev.organizer);
});

const watch = gql`
  subscription Watch($id: ID!) {
    eventUpdated(id: $id) { id title attendeeCount }
  }
`;

// isMultipart says whether a recorded answer was a multipart/mixed body with the given parameter
// (subscriptionSpec or deferSpec).
function isMultipart(call, param) {
  const ct = (call?.contentType || '').toLowerCase();
  return call?.status === 200 && ct.startsWith('multipart/mixed') && ct.includes(param.toLowerCase());
}

test('eventUpdated as a multipart subscription over HttpLink: the renamed event arrives, then a registration on the same stream', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'Apollo multipart event');
  const { client, calls } = newClient({ token: organizer.token });
  const sink = new ev.Sink();
  const sub = client.subscribe({ query: watch, variables: { id: eventId } }).subscribe(sink);
  try {
    const { value, sent } = await ev.renameUntil(sink.first, eventId, organizer.token);
    assert.equal(value.error, undefined, String(value.error));
    assert.equal(value.data.eventUpdated.id, eventId);
    assert.ok(sent.includes(value.data.eventUpdated.title), `got ${value.data.eventUpdated.title}, sent ${sent}`);

    // The subscription went over HTTP with Apollo's Accept and was answered as a multipart stream.
    assert.equal(calls.length, 1, `requests: ${JSON.stringify(calls)}`);
    assert.equal(calls[0].method, 'POST');
    assert.match(calls[0].headers.get('accept'), /multipart\/mixed;boundary=graphql;subscriptionSpec=1\.0/);
    assert.ok(isMultipart(calls[0], 'subscriptionSpec="1.0"'), `answered ${calls[0].status} ${calls[0].contentType}`);

    // The same stream carries the next change: a registration's count.
    const n = sink.values.length;
    assert.equal((await ev.register(eventId, organizer.token)).status, 'CONFIRMED');
    const counted = await ev.waitFor(() => sink.values.slice(n).find((x) => x.data?.eventUpdated?.attendeeCount === 1), 5000);
    assert.ok(counted, `no value with attendeeCount 1: ${JSON.stringify(sink.values.slice(n))}`);
  } finally {
    sub.unsubscribe();
  }
  assert.deepEqual(sink.errors, []);
  assert.equal(calls.length, 1);
});

test('unsubscribed multipart subscriptions leave no stream open: more of them one after another than the per-client cap allows at once', async () => {
  // The server counts each multipart subscription in its per-client stream cap (50 in the test
  // server, WS_MAX_CONNECTIONS_PER_CLIENT) and frees the slot when the stream ends. Apollo ends it
  // by aborting the fetch on unsubscribe: were the server to keep the stream (the handler waiting
  // for a next event that never comes), the 51st subscription from this address would be refused
  // with 429. Other test files hold a few streams from the same address meanwhile.
  const eventId = await ev.freshEvent(organizer.token, 'Apollo multipart churn');
  const rounds = 60;
  const { client, calls } = newClient({ token: organizer.token });
  for (let i = 0; i < rounds; i++) {
    const sink = new ev.Sink();
    const sub = client.subscribe({ query: watch, variables: { id: eventId } }).subscribe(sink);
    // The answer's headers came (the recording fetch keeps a call once they have): the server
    // holds the stream, its first part (a heartbeat) written with them.
    const answered = await ev.waitFor(() => calls[i], 5000);
    sub.unsubscribe();
    assert.ok(answered, `subscription ${i + 1}: no answer in 5 s`);
    assert.ok(isMultipart(answered, 'subscriptionSpec'), `subscription ${i + 1} of ${rounds} answered ${answered.status} ${answered.contentType}`);
    assert.deepEqual(sink.errors, [], `subscription ${i + 1}`);
    // Let the server see the abort before the next one (its slot is freed as the handler returns).
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(calls.length, rounds);
});

test('securityEvents as a multipart subscription without a token: a GraphQL error UNAUTHENTICATED', async () => {
  const { client, calls } = newClient();
  const sink = new ev.Sink();
  client.subscribe({ query: gql`subscription { securityEvents { id type } }` }).subscribe(sink);
  assert.equal(await ev.within(5000, 'the refusal', sink.ended), 'complete');
  assert.equal(sink.values.length, 1, `values: ${JSON.stringify(sink.values)}`);
  const err = sink.values[0].error;
  assert.ok(CombinedGraphQLErrors.is(err), `${err?.name}: ${err?.message}`);
  assert.equal(err.errors[0].extensions.code, 'UNAUTHENTICATED');
  assert.deepEqual(sink.errors, []);
  assert.ok(isMultipart(calls[0], 'subscriptionSpec'), `answered ${calls[0]?.status} ${calls[0]?.contentType}`);
});

const deferred = gql`
  query Card($id: ID!) {
    event(id: $id) {
      id
      title
      ... @defer(label: "details") {
        organizer { id name }
        venue { id name }
      }
    }
  }
`;

test('a query with @defer over HttpLink: multipart/mixed, the initial part first, then the complete result', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'Apollo deferred card');
  const want = await ev.mustData(
    'query($id: ID!) { event(id: $id) { organizer { id name } venue { id name } } }',
    { id: eventId },
    organizer.token,
  );
  // Apollo Client 4 needs an incremental handler for @defer; Defer20220824Handler sends the
  // deferSpec=20220824 Accept.
  const { client, calls } = newClient({ token: organizer.token, clientOptions: { incrementalHandler: new Defer20220824Handler() } });
  const seen = [];
  const done = new Promise((resolve, reject) => {
    const sub = client.watchQuery({ query: deferred, variables: { id: eventId }, fetchPolicy: 'network-only' }).subscribe({
      next: (r) => {
        seen.push(r);
        if (r.error) reject(r.error);
        else if (r.dataState === 'complete') {
          sub.unsubscribe();
          resolve(r);
        }
      },
      error: reject,
    });
  });
  const complete = await ev.within(5000, 'the complete result', done);

  // One request, answered in parts (a merged JSON answer would have reached Apollo whole).
  assert.equal(calls.length, 1);
  assert.match(calls[0].headers.get('accept'), /multipart\/mixed;deferSpec=20220824/);
  assert.ok(isMultipart(calls[0], 'deferSpec=20220824'), `answered ${calls[0].status} ${calls[0].contentType}`);

  // The initial part reached the app alone: the event's own fields, the deferred ones still to come.
  const streaming = seen.find((r) => r.dataState === 'streaming');
  assert.ok(streaming, `no streaming result in ${JSON.stringify(seen.map((r) => [r.dataState, r.data]))}`);
  assert.equal(streaming.data.event.id, eventId);
  assert.equal(streaming.data.event.title, 'Apollo deferred card');
  assert.equal(streaming.data.event.organizer, undefined);
  assert.equal(streaming.data.event.venue, undefined);
  assert.ok(seen.indexOf(streaming) < seen.indexOf(complete));

  // Then everything, the deferred fields as a plain query gives them.
  assert.equal(complete.data.event.title, 'Apollo deferred card');
  assert.deepEqual(
    { organizer: strip(complete.data.event.organizer), venue: strip(complete.data.event.venue) },
    want.event,
  );
  assert.ok(complete.data.event.organizer.name.length > 0);
});

// strip drops Apollo's __typename from a selection.
function strip(o) {
  if (!o) return o;
  const { __typename, ...rest } = o;
  return rest;
}

test('urql (fetchExchange) with @defer: reads the multipart/mixed answer part by part', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'urql deferred card');
  const rec = recordingFetch();
  const client = new Client({
    url: ev.httpURL,
    exchanges: [fetchExchange],
    fetch: rec.fetch,
    // urql's default Accept prefers one JSON answer (and gets the deferred fields merged into it);
    // a client that wants the parts asks for multipart/mixed first.
    fetchOptions: { headers: { authorization: `Bearer ${organizer.token}`, accept: 'multipart/mixed, application/graphql-response+json' } },
    preferGetMethod: false,
  });
  const seen = [];
  const done = new Promise((resolve, reject) => {
    // Not unsubscribed at the last part: that would abort the fetch while urql still reads the
    // closing delimiter.
    client
      .query('query($id: ID!) { event(id: $id) { id title ... @defer { organizer { name } venue { name } } } }', { id: eventId })
      .subscribe((r) => {
        seen.push(r);
        if (r.error) reject(r.error);
        else if (!r.hasNext) resolve(r);
      });
  });
  const last = await ev.within(5000, 'the complete result', done);
  assert.ok(isMultipart(rec.calls[0], 'multipart/mixed'), `answered ${rec.calls[0]?.status} ${rec.calls[0]?.contentType}`);
  assert.ok(seen.length >= 2, `results: ${JSON.stringify(seen.map((r) => [r.hasNext, r.data]))}`);
  assert.equal(seen[0].hasNext, true);
  assert.equal(seen[0].data.event.title, 'urql deferred card');
  assert.equal(seen[0].data.event.organizer, undefined);
  assert.equal(last.data.event.title, 'urql deferred card');
  assert.ok(last.data.event.organizer.name.length > 0, JSON.stringify(last.data));
  assert.ok(last.data.event.venue.name.startsWith('Hall '), JSON.stringify(last.data));
});
