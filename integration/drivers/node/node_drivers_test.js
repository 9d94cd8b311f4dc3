// Real Node.js drivers used fully, directly and through Sluice in every pool mode; what each
// scenario returns must be the same both ways. node-postgres with pg-cursor (portals read in
// chunks), postgres.js (pipelined queries, cursors, transactions, LISTEN), mysql2 (binary
// protocol prepared statements, multi-statements, transactions), all with the firewall looking at
// every statement; then a firewall denial as each of them sees it.
// usage: node node_drivers_test.js <sluice binary>  (env: SLUICE_TEST_PORT_BASE, SLUICE_PG_PRIMARY_PORT,
// SLUICE_MY_PRIMARY_PORT); prints a doctest-style summary line.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const pg = require('pg');
const Cursor = require('pg-cursor');
const postgresModule = require('postgres');
const postgres = postgresModule.default || postgresModule;
const mysql = require('mysql2/promise');

const PG_PORT = Number(process.env.SLUICE_PG_PRIMARY_PORT || 15432);
const MY_PORT = Number(process.env.SLUICE_MY_PRIMARY_PORT || 13306);
const BASE = Number(process.env.SLUICE_TEST_PORT_BASE || 17432);
const PG_MODES = ['session', 'transaction', 'statement'];
const MY_MODES = ['session', 'transaction'];

function config() {
  let c = `[general]\nworkers = 2\nlog_level = "warn"\n[postgres]\nlisten = "127.0.0.1:${BASE}"\n` +
    `[mysql]\nlisten = "127.0.0.1:${BASE + 1}"\n[http]\nlisten = "127.0.0.1:${BASE + 2}"\n` +
    `[[users]]\nname = "app"\npassword = "app"\n` +
    `[clusters.pg]\nprotocol = "postgres"\nprimary = "127.0.0.1:${PG_PORT}"\n` +
    `[clusters.my]\nprotocol = "mysql"\nprimary = "127.0.0.1:${MY_PORT}"\n` +
    // The firewall looks at every statement of every scenario (none matches): answers must still
    // be the server's. frontDoor() below sends the one it denies.
    `[[firewall.rules]]\nmatch = "sluice_fw_canary"\naction = "deny"\n` +
    // So do the traffic rules (one tags every statement and goes on, one matches none) and the
    // query digests.
    `[[rules]]\nname = "label"\ntag = "drivers"\ncontinue = true\n` +
    `[[rules]]\nmatch = "sluice_rule_canary"\naction = "deny"\n` +
    `[digests]\nenabled = true\n`;
  for (const m of PG_MODES)
    c += `[[pools]]\ndatabase = "app_${m}"\nserver_database = "app"\ncluster = "pg"\npool_mode = "${m}"\npool_size = 4\n`;
  for (const m of MY_MODES)
    c += `[[pools]]\ndatabase = "my_${m}"\nserver_database = "app"\ncluster = "my"\npool_mode = "${m}"\npool_size = 4\n`;
  return c;
}

const pgTarget = (mode) => mode ? { host: '127.0.0.1', port: BASE, user: 'app', password: 'app', database: `app_${mode}` }
                                : { host: '127.0.0.1', port: PG_PORT, user: 'app', password: 'app', database: 'app' };
const myTarget = (mode) => mode ? { host: '127.0.0.1', port: BASE + 1, user: 'app', password: 'app', database: `my_${mode}` }
                                : { host: '127.0.0.1', port: MY_PORT, user: 'app', password: 'app', database: 'app' };

// ---- node-postgres -------------------------------------------------------------------------------
async function pgCursorChunks(t) {
  const c = new pg.Client(t);
  await c.connect();
  try {
    const cursor = c.query(new Cursor('SELECT g, repeat($1::text, g) AS r FROM generate_series(1, 40) g', ['x']));
    const chunks = [];
    for (;;) {
      const rows = await cursor.read(7);
      if (rows.length === 0) break;
      chunks.push(rows.map((r) => [r.g, r.r.length]));
    }
    await cursor.close();
    chunks.push((await c.query('SELECT 1 AS after')).rows);
    return chunks;
  } finally { await c.end(); }
}

async function pgQueuedQueriesAndError(t) {
  const c = new pg.Client(t);
  await c.connect();
  try {
    const qs = [];
    for (let i = 0; i < 20; i++) qs.push(c.query('SELECT $1::int * 2 AS v, $2::text AS s', [i, `s${i}`]).then((r) => r.rows[0]));
    qs.push(c.query('SELECT 1/0').catch((e) => ({ error: e.code })));
    qs.push(c.query("SELECT '{\"a\": [1, 2]}'::json AS j, ARRAY[1,2,3] AS a, '\\x0a0b'::bytea AS b, '2024-01-02 03:04:05+00'::timestamptz AS ts").then((r) => r.rows[0]));
    return JSON.stringify(await Promise.all(qs));
  } finally { await c.end(); }
}

async function pgListen(t) {
  const c = new pg.Client(t);
  await c.connect();
  try {
    await c.query('LISTEN wd_node_channel');
    const got = new Promise((resolve) => c.on('notification', (n) => resolve([n.channel, n.payload])));
    const su = new pg.Client({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'app' });
    await su.connect();
    await su.query("NOTIFY wd_node_channel, 'to node'");
    await su.end();
    const r = await got;
    await c.query('UNLISTEN *');
    return r;
  } finally { await c.end(); }
}

// ---- postgres.js ------------------------------------------------------------------------------------
function pgjs(t) { return postgres({ ...t, username: t.user, max: 1, idle_timeout: 1, onnotice: () => {} }); }

async function pgjsListen(t) {
  // postgres.js listens on a connection of its own and notifies from another.
  const sql = postgres({ ...t, username: t.user, max: 2, idle_timeout: 1, onnotice: () => {} });
  try {
    const got = [];
    let done;
    const both = new Promise((resolve) => { done = resolve; });
    const { unlisten } = await sql.listen('wd_pgjs_channel', (x) => { got.push(x); if (got.length === 2) done(); });
    await sql.notify('wd_pgjs_channel', 'one');
    await sql`NOTIFY wd_pgjs_channel, 'two'`;
    await Promise.race([both, new Promise((resolve) => setTimeout(resolve, 5000))]);
    await unlisten();
    return got;
  } finally { await sql.end({ timeout: 1 }); }
}

async function pgjsPipelined(t) {
  const sql = pgjs(t);
  try {
    const all = await Promise.all(Array.from({ length: 30 }, (_, i) => sql`SELECT ${i}::int + 1 AS v`));
    return all.map((r) => r[0].v);
  } finally { await sql.end(); }
}

async function pgjsTransaction(t) {
  const sql = pgjs(t);
  try {
    const out = [];
    try {
      await sql.begin(async (tx) => {
        await tx`SELECT 1`;
        await tx`SELECT 1/0`;
      });
    } catch (e) { out.push(e.code); }
    out.push((await sql.begin(async (tx) => tx`SELECT 'committed' AS s`))[0].s);
    return out;
  } finally { await sql.end(); }
}

async function pgjsCursor(t) {
  const sql = pgjs(t);
  try {
    const chunks = [];
    await sql`SELECT g FROM generate_series(1, 25) g`.cursor(6, (rows) => { chunks.push(rows.map((r) => r.g)); });
    return chunks;
  } finally { await sql.end(); }
}

// ---- mysql2 -----------------------------------------------------------------------------------------
async function myExecute(t) {
  const c = await mysql.createConnection(t);
  try {
    const out = [];
    for (let i = 0; i < 10; i++) {
      const [rows] = await c.execute('SELECT ? + 1 AS v, CONCAT(?, "x") AS s, CAST(? AS DECIMAL(10,2)) AS d', [i, `s${i}`, '1.5']);
      out.push(rows[0]);
    }
    return JSON.stringify(out);
  } finally { await c.end(); }
}

async function myMulti(t) {
  const c = await mysql.createConnection({ ...t, multipleStatements: true });
  try {
    const [results] = await c.query('SELECT 1 AS a; SELECT "two" AS b, 2.5 AS c; DO 0');
    return JSON.stringify(results);
  } finally { await c.end(); }
}

async function myTransactions(t) {
  const c = await mysql.createConnection(t);
  try {
    await c.query('CREATE TABLE IF NOT EXISTS wd_node (id INT PRIMARY KEY, v VARCHAR(20))');
    const key = 2000 + Math.floor(Math.random() * 1000);
    await c.beginTransaction();
    await c.execute('INSERT INTO wd_node VALUES (?, ?)', [key, 'a']);
    await c.rollback();
    const [none] = await c.execute('SELECT count(*) AS n FROM wd_node WHERE id = ?', [key]);
    await c.beginTransaction();
    await c.execute('INSERT INTO wd_node VALUES (?, ?)', [key, 'b']);
    await c.commit();
    const [one] = await c.execute('SELECT v FROM wd_node WHERE id = ?', [key]);
    await c.execute('DELETE FROM wd_node WHERE id = ?', [key]);
    let err = null;
    try { await c.query('SELECT * FROM wd_no_such_table'); } catch (e) { err = e.errno; }
    return JSON.stringify([none[0].n, one[0].v, err]);
  } finally { await c.end(); }
}

// The compressed protocol (compress: true): a large result, several statements, the binary
// protocol. (Directly, mysql2 prints "packets out of order" for MariaDB's renumbering inside
// compressed frames between results; through Sluice it does not: see my_wire_diff_test.cpp.)
async function myCompressed(t) {
  const c = await mysql.createConnection({ ...t, compress: true, multipleStatements: true });
  const quiet = console.error;
  console.error = () => {};
  try {
    const [big] = await c.query("SELECT REPEAT('abc', 40000) AS big, 2 AS n");
    const [multi] = await c.query('SELECT 1 AS a; SELECT "two" AS b');
    const [exec] = await c.execute('SELECT ? * 2 AS v, REPEAT(?, 100) AS r', [21, 'z']);
    return JSON.stringify([big[0].big.length, big[0].n, multi, exec]);
  } finally {
    console.error = quiet;
    await c.end();
  }
}

const SCENARIOS = [
  ['pg + pg-cursor: portal read in chunks of 7', pgCursorChunks, PG_MODES, false],
  ['pg: 20 queued queries, an error, types', pgQueuedQueriesAndError, PG_MODES, false],
  ['pg: LISTEN / NOTIFY to an idle client', pgListen, PG_MODES, false],
  ['postgres.js: listen, notify (its own and by SQL), unlisten', pgjsListen, PG_MODES, false],
  ['postgres.js: 30 pipelined queries', pgjsPipelined, PG_MODES, false],
  ['postgres.js: transactions, one failing', pgjsTransaction, ['session', 'transaction'], false],
  ['postgres.js: cursor in chunks of 6', pgjsCursor, ['session', 'transaction'], false],
  ['mysql2: execute (binary protocol) 10 times', myExecute, MY_MODES, true],
  ['mysql2: multi-statements', myMulti, MY_MODES, true],
  ['mysql2: rollback, commit, an error', myTransactions, MY_MODES, true],
  ['mysql2: the compressed protocol', myCompressed, MY_MODES, true],
];

// The firewall as each driver sees it (not differential: the denial is Sluice's own): the denied
// statement fails with 42501 / 1142 in the middle of queued or pipelined work, and the rest runs.
async function frontDoor() {
  const results = [];
  const c = new pg.Client(pgTarget('transaction'));
  await c.connect();
  const queued = [c.query('SELECT 1 AS a'), c.query('SELECT 2 AS sluice_fw_canary'), c.query('SELECT 3 AS c')];
  const settled = await Promise.allSettled(queued);
  results.push(['node-postgres: queued, the middle one denied',
    settled[0].value?.rows[0].a === 1 && settled[1].reason?.code === '42501' && settled[2].value?.rows[0].c === 3]);
  await c.end();
  const sql = pgjs(pgTarget('transaction'));
  const piped = await Promise.allSettled([sql`select 1 as a`, sql.unsafe('select 2 as sluice_fw_canary'), sql`select 3 as c`]);
  results.push(['postgres.js: pipelined, the middle one denied',
    piped[0].value?.[0].a === 1 && piped[1].reason?.code === '42501' && piped[2].value?.[0].c === 3]);
  await sql.end();
  const m = await mysql.createConnection(myTarget('transaction'));
  let denied = null;
  try { await m.execute('SELECT 2 AS sluice_fw_canary'); } catch (e) { denied = e.errno; }
  const [rows] = await m.execute('SELECT 7 AS x');
  results.push(['mysql2: execute denied (1142), the connection goes on', denied === 1142 && rows[0].x === 7]);
  await m.end();
  return results;
}

function bounded(p, ms) {
  let timer;
  return Promise.race([p, new Promise((resolve) => { timer = setTimeout(() => resolve({ timeout: `no answer within ${ms / 1000} s` }), ms); })])
    .finally(() => clearTimeout(timer));
}

async function run(fn, t) {
  try { return JSON.stringify({ ok: await bounded(fn(t), 30000) }); } catch (e) { return JSON.stringify({ error: e.code || e.message }); }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-nodedrivers-'));
  fs.writeFileSync(path.join(dir, 'sluice.toml'), config());
  const log = fs.openSync(path.join(dir, 'sluice.log'), 'w');
  const proc = spawn(process.argv[2], ['-c', path.join(dir, 'sluice.toml')], { stdio: ['ignore', 'ignore', log] });
  let passed = 0, failed = 0;
  try {
    for (let i = 0; i < 100; i++) {
      try { const c = new pg.Client(pgTarget('session')); await c.connect(); await c.end(); break; } catch (e) { await new Promise((r) => setTimeout(r, 100)); }
    }
    for (const [name, fn, modes, isMy] of SCENARIOS) {
      const want = await run(fn, isMy ? myTarget() : pgTarget());
      if (!want.startsWith('{"ok"')) { console.log(`FAILED ${name}: directly: ${want}`); failed++; continue; }
      for (const m of modes) {
        const got = await run(fn, isMy ? myTarget(m) : pgTarget(m));
        if (got === want) passed++;
        else { failed++; console.log(`FAILED ${name} [${m}]:\n  through Sluice: ${got.slice(0, 400)}\n  directly:       ${want.slice(0, 400)}`); }
      }
    }
    for (const [name, ok] of await bounded(frontDoor(), 30000).then((r) => r.timeout ? [['front door', false]] : r)) {
      if (ok) passed++;
      else { failed++; console.log(`FAILED ${name}`); }
    }
  } catch (e) { console.log(e); failed++; }
  proc.kill('SIGTERM');
  if (failed) process.stderr.write(fs.readFileSync(path.join(dir, 'sluice.log'), 'utf8').slice(-4000));
  fs.closeSync(log);
  fs.rmSync(dir, { recursive: true, force: true });  // (its log, when it matters, is printed above)
  console.log(`[doctest] test cases: ${String(passed + failed).padStart(5)} | ${String(passed).padStart(5)} passed | ${String(failed).padStart(5)} failed | 0 skipped`);
  process.exit(failed ? 1 : 0);
}

main();
