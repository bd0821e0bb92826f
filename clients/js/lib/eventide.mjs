// What every test file shares: where the server is, who signs in, and a few plain-fetch helpers
// for setting the scene (the clients under test are used only for what each test checks).
//
// EVENTIDE_URL is the server's base URL. The defaults are `go run .`'s: the development admin
// and the demo organizer of README.md ("Signing in"); clients_e2e_test.go passes its own server's.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

export const baseURL = (process.env.EVENTIDE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const httpURL = `${baseURL}/graphql`;
export const wsURL = httpURL.replace(/^http/, 'ws');

export const admin = {
  email: process.env.EVENTIDE_ADMIN_EMAIL || 'admin@eventide.local',
  password: process.env.EVENTIDE_ADMIN_PASSWORD || 'eventide-admin',
};
export const organizer = {
  email: process.env.EVENTIDE_ORGANIZER_EMAIL || 'sofia.almeida@example.com',
  password: process.env.EVENTIDE_ORGANIZER_PASSWORD || 'demo-password',
};

// gql posts one request with fetch and returns the parsed body; it fails the test on a status or
// body that is not a GraphQL response.
export async function gql(query, variables = {}, token = '') {
  const headers = { 'content-type': 'application/json', accept: 'application/graphql-response+json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(httpURL, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${res.status} ${res.headers.get('content-type')}: not JSON: ${text.slice(0, 300)}`);
  }
  return body;
}

// mustData is gql for a request that has to succeed.
export async function mustData(query, variables = {}, token = '') {
  const body = await gql(query, variables, token);
  assert.equal(body.errors, undefined, `unexpected errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

export async function login({ email, password }) {
  const data = await mustData(
    'mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) { token user { id role } } }',
    { e: email, p: password },
  );
  return { token: data.login.token, id: data.login.user.id, role: data.login.user.role };
}

// uniqueEmail is an address no earlier run has taken.
export function uniqueEmail(who) {
  return `${who}-${randomUUID()}@example.com`;
}

// freshEvent has the organizer (token) create a venue and a published event on it a week from now,
// so a subscription on it sees only what the test does.
export async function freshEvent(token, title = 'Client test') {
  const v = await mustData(
    'mutation V($i: CreateVenueInput!) { createVenue(input: $i) { id } }',
    { i: { name: `Hall ${randomUUID().slice(0, 8)}`, address: '1 Test Street', city: 'Lisbon', capacity: 100 } },
    token,
  );
  const start = new Date(Date.now() + 7 * 24 * 3600 * 1000);
  const end = new Date(start.getTime() + 2 * 3600 * 1000);
  const e = await mustData(
    'mutation E($i: CreateEventInput!) { createEvent(input: $i) { id } }',
    { i: { title, startsAt: start.toISOString(), endsAt: end.toISOString(), capacity: 10, venueId: v.createVenue.id } },
    token,
  );
  const id = e.createEvent.id;
  const p = await mustData('mutation P($id: ID!) { publishEvent(id: $id) { id status } }', { id }, token);
  assert.equal(p.publishEvent.status, 'PUBLISHED');
  return id;
}

// register signs the holder of token up for the event: one eventUpdated with attendeeCount + 1.
export async function register(eventId, token) {
  const d = await mustData(
    'mutation R($id: ID!) { registerForEvent(eventId: $id) { status event { attendeeCount } } }',
    { id: eventId },
    token,
  );
  return d.registerForEvent;
}

// within rejects when promise has not settled in ms, naming what was awaited.
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// waitFor polls pred every 20 ms and resolves with its first truthy value, or with undefined when
// ms pass first.
export async function waitFor(pred, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v || Date.now() >= deadline) return v || undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

// rename has the organizer (token) give the event a new title: one eventUpdated carrying it.
export async function rename(eventId, title, token) {
  const d = await mustData(
    'mutation U($id: ID!, $t: String!) { updateEvent(id: $id, input: { title: $t }) { id title } }',
    { id: eventId, t: title },
    token,
  );
  assert.equal(d.updateEvent.title, title);
}

// renameUntil renames the event every `every` ms (a new title each time, all returned in `sent`)
// until `received` settles: no client says when the server has taken its subscription, so the
// first change may come before it. It resolves with received's value, or rejects after ms.
export async function renameUntil(received, eventId, token, { every = 250, ms = 10000 } = {}) {
  const sent = [];
  let settled = false;
  const watched = received.finally(() => {
    settled = true;
  });
  const deadline = Date.now() + ms;
  const loop = (async () => {
    while (!settled && Date.now() < deadline) {
      const title = `Renamed ${sent.length + 1} ${randomUUID().slice(0, 8)}`;
      sent.push(title);
      await rename(eventId, title, token);
      await new Promise((r) => setTimeout(r, every));
    }
  })();
  // A failed rename fails the wait with its own error rather than a time-out.
  const value = await within(ms, `an event after renaming ${eventId}`, Promise.race([watched, loop.then(() => watched)]));
  await loop;
  return { value, sent };
}

// Sink is a subscription sink that keeps what arrives; first resolves with the first value and
// rejects on an error or a complete before any value; ended settles on error or complete.
export class Sink {
  constructor() {
    this.values = [];
    this.errors = [];
    this.completed = false;
    this.first = new Promise((resolve, reject) => {
      this._first = resolve;
      this._fail = reject;
    });
    this.ended = new Promise((resolve) => {
      this._ended = resolve;
    });
    this.first.catch(() => {});
  }
  next = (v) => {
    this.values.push(v);
    this._first(v);
  };
  error = (e) => {
    this.errors.push(e);
    this._fail(e instanceof Error ? e : new Error(`subscription error: ${JSON.stringify(e)}`));
    this._ended('error');
  };
  complete = () => {
    this.completed = true;
    this._fail(new Error('subscription completed before any value'));
    this._ended('complete');
  };
}
