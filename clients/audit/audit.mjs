// Runs graphql-http's server audits (the GraphQL-over-HTTP spec's MUSTs and SHOULDs) against a
// running Eventide and prints each result; exits 1 on any error, and on any warning not named in
// KEPT below with its reason.
import { serverAudits } from 'graphql-http';

const url = process.env.AUDIT_URL || 'http://127.0.0.1:8080/graphql';

// Warnings kept on purpose, by audit id, with why.
const KEPT = {};

const results = await Promise.all(serverAudits({ url }).map(async (audit) => ({ audit, result: await audit.fn() })));
let errors = 0;
let warnings = 0;
for (const { audit, result } of results) {
  const line = `${result.status.padEnd(7)} ${audit.id} ${audit.name}`;
  if (result.status === 'ok') {
    console.log(line);
    continue;
  }
  console.log(`${line}\n        ${result.reason}`);
  if (result.status === 'error') errors++;
  if (result.status === 'warn' && !KEPT[audit.id]) warnings++;
}
console.log(`\n${results.length} audits: ${errors} errors, ${warnings} warnings not kept on purpose`);
process.exit(errors + warnings > 0 ? 1 : 0);
