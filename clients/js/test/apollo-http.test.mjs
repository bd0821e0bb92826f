// Apollo Client 4 over HttpLink alone, as a web app without a websocket uses it: queries with
// relay-style pagination, normalised cache updates from mutations, login and sign-up, errors with
// their codes reaching the error link, automatic persisted queries, client awareness headers.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { CombinedGraphQLErrors, InMemoryCache, gql } from '@apollo/client';
import { ErrorLink } from '@apollo/client/link/error';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { relayStylePagination } from '@apollo/client/utilities';
import { awareness, newClient } from '../lib/apollo.mjs';
import * as ev from '../lib/eventide.mjs';

let organizer;
before(async () => {
  organizer = await ev.login(ev.organizer);
});

const EVENTS = gql`
  query Events($first: Int!, $after: String, $city: String) {
    events(first: $first, after: $after, filter: { city: $city }) {
      totalCount
      edges { cursor node { id title startsAt venue { id city } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

test('a query pages with fetchMore into one relayStylePagination list, in the server order', async () => {
  // What the server lists in one page of 6 is what two pages of 3 must add up to.
  const direct = await ev.mustData(
    'query($c: String){ events(first: 6, filter: { city: $c }) { edges { node { id } } } }',
    { c: 'Berlin' },
  );
  const want = direct.events.edges.map((e) => e.node.id);
  assert.equal(want.length, 6, 'the demo data has at least 6 upcoming Berlin events');

  const cache = new InMemoryCache({
    typePolicies: { Query: { fields: { events: relayStylePagination(['filter']) } } },
  });
  const { client, calls } = newClient({ cache });
  const first = await client.query({ query: EVENTS, variables: { first: 3, city: 'Berlin' } });
  assert.equal(first.data.events.edges.length, 3);
  assert.equal(first.data.events.pageInfo.hasNextPage, true);
  assert.ok(first.data.events.totalCount >= 6);
  for (const e of first.data.events.edges) assert.equal(e.node.venue.city, 'Berlin');

  // A watched query (what a list component holds) sees the second page appended to the first.
  const watch = client.watchQuery({ query: EVENTS, variables: { first: 3, city: 'Berlin' } });
  let sawAll;
  const all = new Promise((resolve) => {
    sawAll = resolve;
  });
  const sub = watch.subscribe((r) => {
    if (r.data?.events?.edges?.length === 6) sawAll(r.data.events);
  });
  try {
    const more = await watch.fetchMore({ variables: { after: first.data.events.pageInfo.endCursor } });
    assert.equal(more.data.events.edges.length, 3, 'fetchMore got the second page');
    const merged = await ev.within(5000, 'the watched list to hold both pages', all);
    assert.deepEqual(merged.edges.map((e) => e.node.id), want);
    assert.equal(merged.pageInfo.endCursor, more.data.events.pageInfo.endCursor);
  } finally {
    sub.unsubscribe();
  }
  // Apollo Client 4 asks for the GraphQL-over-HTTP media type and gets it.
  assert.equal(calls.length, 2, 'one request per page; the watched first page came from the cache');
  for (const c of calls) {
    assert.equal(c.status, 200);
    assert.match(c.contentType, /^application\/graphql-response\+json/);
  }
});

test('login and signUp through Apollo: the payload user sees its own email', async () => {
  const { client } = newClient();
  const login = await client.mutate({
    mutation: gql`mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) { token user { id email role } } }`,
    variables: { e: ev.organizer.email, p: ev.organizer.password },
  });
  assert.ok(login.data.login.token.length > 20);
  assert.equal(login.data.login.user.email, ev.organizer.email);
  assert.equal(login.data.login.user.role, 'ORGANIZER');
  assert.equal(login.data.login.user.id, organizer.id);

  const email = ev.uniqueEmail('apollo');
  const signUp = await client.mutate({
    mutation: gql`mutation SignUp($i: SignUpInput!) { signUp(input: $i) { token user { id email name role } } }`,
    variables: { i: { email, password: 'apollo-password', name: 'Apollo Tester' } },
  });
  assert.equal(signUp.data.signUp.user.email, email);
  assert.equal(signUp.data.signUp.user.name, 'Apollo Tester');
  assert.equal(signUp.data.signUp.user.role, 'USER');

  // The new token is a session: `me` answers as that user.
  const { client: asNew } = newClient({ token: signUp.data.signUp.token });
  const me = await asNew.query({ query: gql`{ me { id email } }` });
  assert.deepEqual({ ...me.data.me }, { __typename: 'User', id: signUp.data.signUp.user.id, email });
});

test('registerForEvent through Apollo updates the cached event by its id (normalised cache)', async () => {
  const eventId = await ev.freshEvent(organizer.token, 'Apollo registration');
  const { client } = newClient({ token: organizer.token });
  const EVENT = gql`query Event($id: ID!) { event(id: $id) { id title attendeeCount viewerRegistration { id status } } }`;
  const before = await client.query({ query: EVENT, variables: { id: eventId } });
  assert.equal(before.data.event.attendeeCount, 0);
  assert.equal(before.data.event.viewerRegistration, null);

  const reg = await client.mutate({
    mutation: gql`mutation Register($id: ID!) { registerForEvent(eventId: $id) { id status event { id attendeeCount } } }`,
    variables: { id: eventId },
  });
  assert.equal(reg.data.registerForEvent.status, 'CONFIRMED');
  assert.equal(reg.data.registerForEvent.event.attendeeCount, 1);
  // The mutation's answer went into the same normalised Event the query cached.
  const cached = client.readQuery({ query: EVENT, variables: { id: eventId } });
  assert.equal(cached.event.attendeeCount, 1);
  assert.equal(cached.event.title, 'Apollo registration');
});

test('a bad token is UNAUTHENTICATED as a GraphQL error in the error link, not a network error', async () => {
  const seen = [];
  const errorLink = new ErrorLink(({ error }) => {
    seen.push(error);
  });
  const { client, calls } = newClient({ token: 'not-a-token', links: [errorLink] });
  await assert.rejects(client.query({ query: gql`{ me { id } }` }), (err) => {
    assert.ok(CombinedGraphQLErrors.is(err), `client.query rejected with ${err?.name}: ${err?.message}`);
    assert.equal(err.errors[0].extensions.code, 'UNAUTHENTICATED');
    return true;
  });
  assert.equal(seen.length, 1, 'the error link saw the error once');
  assert.ok(CombinedGraphQLErrors.is(seen[0]), `error link got ${seen[0]?.name}: ${seen[0]?.message}`);
  assert.equal(seen[0].errors[0].extensions.code, 'UNAUTHENTICATED');
  assert.equal(calls[0].status, 401);
  assert.match(calls[0].contentType, /^application\/graphql-response\+json/);
});

test('a validation error and a bad user input reach the error link with their codes', async () => {
  const codes = [];
  const errorLink = new ErrorLink(({ error }) => {
    if (CombinedGraphQLErrors.is(error)) codes.push(...error.errors.map((e) => e.extensions?.code));
    else codes.push(`network: ${error.message}`);
  });
  const { client } = newClient({ token: organizer.token, links: [errorLink] });
  await assert.rejects(client.query({ query: gql`{ events(first: 1) { edges { node { noSuchField } } } }` }), CombinedGraphQLErrors);
  await assert.rejects(
    client.mutate({
      mutation: gql`mutation($i: CreateVenueInput!) { createVenue(input: $i) { id } }`,
      variables: { i: { name: 'Too small', address: '1 Street', city: 'Lisbon', capacity: -5 } },
    }),
    CombinedGraphQLErrors,
  );
  assert.deepEqual(codes, ['GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']);
});

test('automatic persisted queries with sha256: hash first, the query once on PERSISTED_QUERY_NOT_FOUND, then the hash alone', async () => {
  const sha256 = (q) => createHash('sha256').update(q).digest('hex');
  // A query text no earlier run has registered, so the first hash is unknown to the server.
  const marker = `apq${randomUUID().replaceAll('-', '')}`;
  const QUERY = gql(`query Apq { ${marker}: events(first: 2, filter: { city: "Lisbon" }) { edges { node { id title } } } }`);

  const { client, calls } = newClient({ links: [new PersistedQueryLink({ sha256 })] });
  const a = await client.query({ query: QUERY, fetchPolicy: 'network-only' });
  const b = await client.query({ query: QUERY, fetchPolicy: 'network-only' });
  assert.equal(a.data[marker].edges.length, 2);
  assert.deepEqual(b.data, a.data);

  assert.equal(calls.length, 3, `requests: ${JSON.stringify(calls.map((c) => c.body))}`);
  const hash = calls[0].body.extensions.persistedQuery.sha256Hash;
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.equal(calls[0].body.query, undefined, 'the first request sends the hash alone');
  assert.equal(calls[1].body.extensions.persistedQuery.sha256Hash, hash);
  assert.equal(sha256(calls[1].body.query), hash, 'the retry sends the query whose hash it is');
  assert.equal(calls[2].body.query, undefined, 'after that the hash alone is enough');
  assert.equal(calls[2].body.extensions.persistedQuery.sha256Hash, hash);
  assert.equal(calls[2].status, 200);
});

test('persisted queries over GET (useGETForHashedQueries) are answered from the hash', async () => {
  const sha256 = (q) => createHash('sha256').update(q).digest('hex');
  const marker = `apqget${randomUUID().replaceAll('-', '')}`;
  const QUERY = gql(`query ApqGet { ${marker}: venues(city: "Lisbon", first: 1) { edges { node { id city } } } }`);
  const { client, calls } = newClient({ links: [new PersistedQueryLink({ sha256, useGETForHashedQueries: true })] });
  const a = await client.query({ query: QUERY, fetchPolicy: 'network-only' });
  const b = await client.query({ query: QUERY, fetchPolicy: 'network-only' });
  assert.equal(a.data[marker].edges[0].node.city, 'Lisbon');
  assert.deepEqual(b.data, a.data);
  assert.deepEqual(calls.map((c) => c.method), ['GET', 'POST', 'GET']);
  assert.equal(new URL(calls[2].url).searchParams.get('query'), null, 'the last GET carries no query text');
  assert.equal(calls[2].status, 200);
});

test('client awareness: Apollo sends its name and version headers, and a browser preflight for them is allowed', async () => {
  const { client, calls } = newClient();
  const r = await client.query({ query: gql`{ venues(city: "Lisbon", first: 1) { edges { node { id city } } } }` });
  assert.equal(r.data.venues.edges[0].node.city, 'Lisbon');
  const h = calls[0].headers;
  assert.equal(h.get('apollographql-client-name'), awareness.name);
  assert.equal(h.get('apollographql-client-version'), awareness.version);
  assert.equal(calls[0].body.extensions?.clientLibrary?.name, '@apollo/client', 'enhanced client awareness in extensions');

  // The headers a browser would have to ask for before sending that request cross-origin.
  const safelisted = new Set(['accept', 'accept-language', 'content-language']);
  const asked = [...h.keys()].filter((k) => !safelisted.has(k));
  assert.ok(asked.includes('apollographql-client-name') && asked.includes('content-type'), asked.join(','));
  const pre = await fetch(ev.httpURL, {
    method: 'OPTIONS',
    headers: {
      origin: 'http://127.0.0.1:5173',
      'access-control-request-method': 'POST',
      'access-control-request-headers': asked.join(','),
    },
  });
  assert.ok(pre.status === 204 || pre.status === 200, `preflight status ${pre.status}`);
  const allowed = (pre.headers.get('access-control-allow-headers') || '').toLowerCase().split(/\s*,\s*/);
  for (const name of asked) assert.ok(allowed.includes(name), `preflight does not allow ${name}: ${allowed}`);
  assert.ok(pre.headers.get('access-control-allow-origin'), 'no Access-Control-Allow-Origin');
});
