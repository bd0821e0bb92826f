// graphql-http's server audits: the GraphQL-over-HTTP spec's MUSTs, SHOULDs and MAYs, one test
// each. An error fails; a warning fails unless KEPT names it with the reason; a notice (a MAY the
// server does otherwise) passes with the audit's reason printed as a diagnostic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAudits } from 'graphql-http';
import { httpURL } from '../lib/eventide.mjs';

// Warnings kept on purpose, by audit id, with why. None today.
const KEPT = {};

const audits = serverAudits({ url: httpURL });
// All at once (61 requests, under the per-client connection cap), each test awaiting its own.
const results = new Map(audits.map((a) => [a.id, a.fn()]));

test('the audit suite is the one this file was written against', () => {
  // graphql-http 1.23.1 has 61 audits; a new version with more should be read before it is trusted.
  assert.equal(audits.length, 61);
});

for (const audit of audits) {
  test(`${audit.id} ${audit.name}`, async (t) => {
    const result = await results.get(audit.id);
    if (result.status === 'ok') return;
    const reason = typeof result.reason === 'string' ? result.reason : JSON.stringify(result.reason);
    if (result.status === 'notice') {
      t.diagnostic(`notice: ${reason}`);
      return;
    }
    if (result.status === 'warn' && KEPT[audit.id]) {
      t.diagnostic(`warning kept on purpose: ${KEPT[audit.id]} (${reason})`);
      return;
    }
    assert.fail(`${result.status}: ${reason}${result.response ? `\n${result.response.status} ${result.response.headers.get('content-type')}` : ''}`);
  });
}
