#!/usr/bin/python3
"""Real Python drivers used fully, directly and through Sluice in every pool mode; what each
scenario returns must be the same both ways. psycopg 3 (pipelines, server cursors, COPY, binary
results, server-side prepared statements, LISTEN/NOTIFY, cancel), psycopg2 (named cursors read in
chunks, COPY, notifications polled), PyMySQL (multi-statements, CALL with several result sets,
unbuffered cursors, transactions). Then the front door as psycopg 3 and PyMySQL see it (an access
rule's refusal, firewall denials as each driver's error, in a pipeline and a transaction).
Debian's python3-psycopg, python3-psycopg2, python3-pymysql.

usage: python_drivers_test.py <sluice binary>   (env: SLUICE_TEST_PORT_BASE, SLUICE_PG_PRIMARY_PORT,
SLUICE_MY_PRIMARY_PORT); prints a doctest-style summary line.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import psycopg
import psycopg2
import psycopg2.extensions
import pymysql

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sandbox_backends import MY_PORT, PG_PORT, backends_toml  # noqa: E402  (integration/)
BASE = int(os.environ.get("SLUICE_TEST_PORT_BASE", "18432"))
SLUICE_PG, SLUICE_MY, SLUICE_HTTP = BASE, BASE + 1, BASE + 2
PG_MODES = ["session", "transaction", "statement"]
MY_MODES = ["session", "transaction"]

CONFIG = f"""
[general]
workers = 2
log_level = "warn"
[postgres]
listen = "127.0.0.1:{SLUICE_PG}"
[mysql]
listen = "127.0.0.1:{SLUICE_MY}"
local_infile = true
[http]
listen = "127.0.0.1:{SLUICE_HTTP}"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:{PG_PORT}"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:{MY_PORT}"
# The firewall looks at every statement of every scenario (none matches): answers must still be
# the server's.
[[firewall.rules]]
match = "sluice_fw_canary"
action = "deny"
# So do the traffic rules (one tags every statement and goes on, one matches none) and the query
# digests: answers must still be the server's.
[[rules]]
name = "label"
tag = "drivers"
continue = true
[[rules]]
match = "sluice_rule_canary"
action = "deny"
[digests]
enabled = true
""" + "".join(f"""
[[pools]]
database = "app_{m}"
server_database = "app"
cluster = "pg"
pool_mode = "{m}"
pool_size = 4
""" for m in PG_MODES) + "".join(f"""
[[pools]]
database = "my_{m}"
server_database = "app"
cluster = "my"
pool_mode = "{m}"
pool_size = 4
""" for m in MY_MODES)


def pg_dsn(mode=None):
    if mode is None:
        return f"host=127.0.0.1 port={PG_PORT} user=app password=app dbname=app sslmode=disable"
    return f"host=127.0.0.1 port={SLUICE_PG} user=app password=app dbname=app_{mode} sslmode=disable"


def my_args(mode=None):
    if mode is None:
        return dict(host="127.0.0.1", port=MY_PORT, user="app", password="app", database="app")
    return dict(host="127.0.0.1", port=SLUICE_MY, user="app", password="app", database=f"my_{mode}")


def superuser():
    c = psycopg.connect(f"host=127.0.0.1 port={PG_PORT} user=postgres dbname=app sslmode=disable", autocommit=True)
    return c


# ---- psycopg 3 ----------------------------------------------------------------------------------

def pg3_pipeline_with_error(dsn):
    out = []
    with psycopg.connect(dsn, autocommit=True) as c:
        try:
            with c.pipeline():
                cur = c.execute("SELECT %s::int + 1", [1])
                c.execute("SELECT 1/0")
                c.execute("SELECT 3")
        except psycopg.errors.DivisionByZero as e:
            out.append(("error", e.sqlstate))
        out.append(cur.fetchall())
        with c.pipeline():
            curs = [c.execute("SELECT %s::text || 'x'", [str(i)]) for i in range(50)]
        out.append([cu.fetchone()[0] for cu in curs])
    return out


def pg3_executemany_pipeline(dsn):
    with psycopg.connect(dsn) as c:
        with c.cursor() as cur:
            cur.executemany("SELECT %s::int * 2, %s::text", [(i, f"v{i}") for i in range(100)], returning=True)
            rows = []
            while True:
                rows.append(cur.fetchone())
                if not cur.nextset():
                    break
        c.rollback()
    return rows


def pg3_server_cursor_chunks(dsn):
    with psycopg.connect(dsn) as c:
        with c.cursor(name="wd_cur") as cur:
            cur.itersize = 7
            cur.execute("SELECT g, repeat('r', g) FROM generate_series(1, 50) g")
            first = cur.fetchmany(3)
            rest = list(cur)
        c.commit()
    return [first, rest]


def pg3_copy(dsn):
    with psycopg.connect(dsn) as c:
        with c.cursor() as cur:
            cur.execute("CREATE TEMP TABLE wd_copy (a int, b text)")
            with cur.copy("COPY wd_copy (a, b) FROM STDIN") as cp:
                for i in range(1000):
                    cp.write_row((i, f"row {i}"))
            cur.execute("SELECT count(*), sum(a) FROM wd_copy")
            counted = cur.fetchone()
            data = b""
            with cur.copy("COPY (SELECT a, b FROM wd_copy WHERE a < 20 ORDER BY a) TO STDOUT") as cp:
                for block in cp:
                    data += bytes(block)
        c.rollback()
    return [counted, data]


def pg3_binary(dsn):
    with psycopg.connect(dsn) as c:
        with c.cursor(binary=True) as cur:
            cur.execute("SELECT 42::int4, 1.5::float8, 'text'::text, '2024-01-02'::date, '{1,2}'::int[], "
                        "'\\x0102'::bytea, true, 12345678901::int8, 3.25::numeric")
            row = cur.fetchone()
        c.rollback()
    return list(row)


def pg3_prepared(dsn):
    out = []
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=2) as c:
        for i in range(10):
            out.append(c.execute("SELECT %s::int + 100, %s::text", [i, "p"]).fetchone())
        out.append(c.execute("SELECT %s::int", [7], prepare=True).fetchone())
    return out


def pg3_listen_notify(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("LISTEN wd_py_channel")
        with superuser() as su:
            su.execute("NOTIFY wd_py_channel, 'from outside'")
        got = []
        c.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        # The notification must reach the idle client by itself: its socket turns readable.
        import select
        readable = select.select([c.pgconn.socket], [], [], 5)[0] != []
        c.execute("SELECT 1")  # psycopg hands received notifications to the handler here
        c.execute("UNLISTEN *")
    return [readable, got]


def pg3_cancel(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        t = threading.Timer(0.5, c.cancel)
        t.start()
        try:
            c.execute("SELECT pg_sleep(10)")
            res = "not cancelled"
        except psycopg.errors.QueryCanceled as e:
            res = e.sqlstate
        t.join()
        after = c.execute("SELECT 'after'").fetchone()
    return [res, after]


def pg3_session_state(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET statement_timeout = '4567ms'")
        c.execute("SELECT set_config('work_mem', '3MB', false)")
        return [c.execute("SHOW statement_timeout").fetchone(), c.execute("SHOW work_mem").fetchone()]


def pg3_transaction_and_error(dsn):
    out = []
    with psycopg.connect(dsn) as c:
        c.execute("SELECT 1")
        try:
            c.execute("SELECT * FROM wd_no_such_table")
        except psycopg.errors.UndefinedTable as e:
            out.append(e.sqlstate)
        c.rollback()
        out.append(c.execute("SELECT 'fine'").fetchone())
        c.commit()
    return out


def pg3_large_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute("SELECT g, repeat(md5(g::text), 20000) FROM generate_series(1, 8) g").fetchall()
    return [(g, len(s), s[:40]) for g, s in rows]


# ---- psycopg2 -----------------------------------------------------------------------------------

def pg2_named_cursor(dsn):
    c = psycopg2.connect(dsn)
    try:
        cur = c.cursor(name="wd_pg2")
        cur.itersize = 5
        cur.execute("SELECT g FROM generate_series(1, 23) g")
        rows = [r for r in cur]
        cur.close()
        c.commit()
        return rows
    finally:
        c.close()


def pg2_copy_expert(dsn):
    import io
    c = psycopg2.connect(dsn)
    try:
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE wd_pg2_copy (a int)")
        cur.copy_expert("COPY wd_pg2_copy FROM STDIN", io.StringIO("".join(f"{i}\n" for i in range(500))))
        buf = io.StringIO()
        cur.copy_expert("COPY (SELECT sum(a) FROM wd_pg2_copy) TO STDOUT", buf)
        c.rollback()
        return buf.getvalue()
    finally:
        c.close()


def pg2_notify_poll(dsn):
    import select
    c = psycopg2.connect(dsn)
    c.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    try:
        cur = c.cursor()
        cur.execute("LISTEN wd_pg2_channel")
        with superuser() as su:
            su.execute("NOTIFY wd_pg2_channel, 'polled'")
        deadline = time.time() + 5
        while time.time() < deadline and not c.notifies:
            if select.select([c], [], [], 1) != ([], [], []):
                c.poll()
        got = [(n.channel, n.payload) for n in c.notifies]
        cur.execute("UNLISTEN *")
        return got
    finally:
        c.close()


# ---- PyMySQL ------------------------------------------------------------------------------------

def my_setup():
    c = pymysql.connect(**my_args(), client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        cur.execute("DROP PROCEDURE IF EXISTS wd_two_results")
        cur.execute("CREATE PROCEDURE wd_two_results() BEGIN SELECT 1 AS a; SELECT 'two' AS b, 2.5 AS c; END")
        cur.execute("CREATE TABLE IF NOT EXISTS wd_py (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("DELETE FROM wd_py")
    c.commit()
    c.close()


def my_multi_statements(args):
    c = pymysql.connect(**args, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        out = []
        with c.cursor() as cur:
            cur.execute("SELECT 1; SELECT 'b', 2; DO 0; SELECT 3")
            while True:
                out.append(cur.fetchall())
                if not cur.nextset():
                    break
        return out
    finally:
        c.close()


def my_call_results(args):
    c = pymysql.connect(**args)
    try:
        out = []
        with c.cursor() as cur:
            cur.callproc("wd_two_results")
            while True:
                out.append((cur.description and [d[0] for d in cur.description], cur.fetchall()))
                if not cur.nextset():
                    break
        return out
    finally:
        c.close()


def my_unbuffered(args):
    c = pymysql.connect(**args, cursorclass=pymysql.cursors.SSCursor)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT seq, REPEAT('x', seq) FROM seq_1_to_3000")
            n, total = 0, 0
            for row in cur:
                n += 1
                total += len(row[1])
        return [n, total]
    finally:
        c.close()


def my_transactions(args):
    c = pymysql.connect(**args, autocommit=False)
    try:
        with c.cursor() as cur:
            key = 1000 + (hash(str(args)) % 1000)
            cur.execute("INSERT INTO wd_py VALUES (%s, 'a') ON DUPLICATE KEY UPDATE v = 'a'", (key,))
            c.rollback()
            cur.execute("SELECT count(*) FROM wd_py WHERE id = %s", (key,))
            after_rollback = cur.fetchone()
            cur.execute("INSERT INTO wd_py VALUES (%s, 'b') ON DUPLICATE KEY UPDATE v = 'b'", (key,))
            c.commit()
            cur.execute("SELECT v FROM wd_py WHERE id = %s", (key,))
            after_commit = cur.fetchone()
            cur.execute("DELETE FROM wd_py WHERE id = %s", (key,))
            c.commit()
        return [after_rollback, after_commit]
    finally:
        c.close()


def my_errors_and_warnings(args):
    c = pymysql.connect(**args)
    try:
        out = []
        with c.cursor() as cur:
            try:
                cur.execute("SELECT * FROM wd_no_such_table")
            except pymysql.err.ProgrammingError as e:
                out.append(e.args[0])
            cur.execute("SELECT CAST('12abc' AS SIGNED)")
            out.append(cur.fetchall())
            cur.execute("SHOW WARNINGS")
            out.append([r[:2] for r in cur.fetchall()])
        return out
    finally:
        c.close()


def my_load_data_local(args):
    path = os.path.join(tempfile.gettempdir(), f"sluice-pyinfile-{os.getpid()}.tsv")
    with open(path, "w") as f:
        f.write("1\tone\n2\ttwo\n3\tthree\n")
    c = pymysql.connect(**args, local_infile=True)
    try:
        out = []
        with c.cursor() as cur:
            cur.execute("DELETE FROM wd_py")
            out.append(cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE wd_py"))
            cur.execute("SELECT id, v FROM wd_py ORDER BY id")
            out.append(cur.fetchall())
            try:  # a file the client cannot read: it sends no data, the server answers an error
                cur.execute(f"LOAD DATA LOCAL INFILE '{path}.missing' INTO TABLE wd_py")
            except pymysql.err.OperationalError as e:
                out.append(e.args[0])
            cur.execute("SELECT COUNT(*) FROM wd_py")  # the connection goes on
            out.append(cur.fetchall())
            cur.execute("DELETE FROM wd_py")
        c.commit()
        return out
    finally:
        c.close()
        os.remove(path)


PG_SCENARIOS = [
    ("psycopg: pipeline with an error midway, then 50 pipelined", pg3_pipeline_with_error, PG_MODES),
    ("psycopg: executemany (pipelined) with returning", pg3_executemany_pipeline, ["session", "transaction"]),
    ("psycopg: server-side cursor read in chunks", pg3_server_cursor_chunks, ["session", "transaction"]),
    ("psycopg: COPY FROM STDIN and TO STDOUT", pg3_copy, ["session", "transaction"]),
    ("psycopg: binary results", pg3_binary, ["session", "transaction"]),
    ("psycopg: server-side prepared statements", pg3_prepared, PG_MODES),
    ("psycopg: LISTEN / NOTIFY to an idle client", pg3_listen_notify, PG_MODES),
    ("psycopg: cancel", pg3_cancel, PG_MODES),
    ("psycopg: session parameters across transactions", pg3_session_state, PG_MODES),
    ("psycopg: an error in a transaction, rollback", pg3_transaction_and_error, ["session", "transaction"]),
    ("psycopg: large rows", pg3_large_rows, PG_MODES),
    ("psycopg2: named cursor read in chunks", pg2_named_cursor, ["session", "transaction"]),
    ("psycopg2: copy_expert in and out", pg2_copy_expert, ["session", "transaction"]),
    ("psycopg2: notifications polled", pg2_notify_poll, PG_MODES),
]
MY_SCENARIOS = [
    ("PyMySQL: multi-statements", my_multi_statements, MY_MODES),
    ("PyMySQL: CALL with two result sets", my_call_results, MY_MODES),
    ("PyMySQL: unbuffered cursor over 3000 rows", my_unbuffered, MY_MODES),
    ("PyMySQL: rollback and commit", my_transactions, MY_MODES),
    ("PyMySQL: an error, warnings", my_errors_and_warnings, MY_MODES),
    ("PyMySQL: LOAD DATA LOCAL INFILE, and a file the client cannot read", my_load_data_local, MY_MODES),
]


def start_sluice(binary, work, name, text):
    """Sluice with config `text` (work/name.toml), its stderr in work/name.log."""
    conf = os.path.join(work, name + ".toml")
    with open(conf, "w") as f:
        f.write(text)
    log = open(os.path.join(work, name + ".log"), "w")
    return subprocess.Popen([binary, "-c", conf], stderr=log), log


def stop_sluice(proc, log, failed):
    """SIGTERM (then SIGKILL after 10 s); the log's tail goes to stderr when something failed."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    if failed:
        sys.stderr.write(open(log.name).read()[-4000:])


FRONT_DOOR_CONFIG = f"""
[general]
workers = 2
log_level = "warn"
[postgres]
listen = "127.0.0.1:{SLUICE_PG + 3}"
[mysql]
listen = "127.0.0.1:{SLUICE_MY + 3}"
{backends_toml(pool_size=4)}[[users]]
name = "blocked"
password = "b"
[[access]]
user = "blocked"
action = "reject"
[[access]]
address = ["127.0.0.1", "::1"]
action = "allow"
[[firewall.rules]]
kinds = ["drop", "truncate"]
action = "deny"
"""


def front_door(binary, work):
    """The front door as drivers see it (not differential: these answers are Sluice's own): the
    refusal of an access rule, firewall denials as each driver's error class, inside a psycopg
    pipeline (the pipeline goes on after its sync) and a transaction (which fails), and the
    connection usable afterwards. Returns (passed, failed)."""
    proc, log = start_sluice(binary, work, "front_door", FRONT_DOOR_CONFIG)
    dsn = f"host=127.0.0.1 port={SLUICE_PG + 3} dbname=app user=app password=app sslmode=disable"
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAILED front door: {name} {detail}")

    try:
        for _ in range(100):
            try:
                psycopg.connect(dsn).close()
                break
            except Exception:
                time.sleep(0.1)
        try:
            psycopg.connect(dsn.replace("user=app password=app", "user=blocked password=b")).close()
            check("access rule refuses psycopg", False, "connected")
        except psycopg.OperationalError as e:
            check("access rule refuses psycopg", "access rule 1 rejects connection" in str(e), str(e))
        with psycopg.connect(dsn, autocommit=True) as c:
            try:
                c.execute("DROP TABLE IF EXISTS nothing_here")
                check("psycopg: DROP denied", False, "ran")
            except psycopg.errors.InsufficientPrivilege as e:
                check("psycopg: DROP denied (42501)", "Sluice firewall" in str(e), str(e))
            check("psycopg: connection usable", c.execute("SELECT 1").fetchone() == (1,))
            # A pipeline: the denied statement fails its part; the pipeline goes on after the sync.
            results = []
            try:
                with c.pipeline() as p:
                    c.execute("SELECT 2")
                    p.sync()
                    try:
                        c.execute("TRUNCATE nothing_here")
                        p.sync()
                    except psycopg.errors.InsufficientPrivilege:
                        results.append("denied")
                    results.append(c.execute("SELECT 3").fetchone()[0])
            except psycopg.errors.InsufficientPrivilege:
                results.append("denied at exit")
            check("psycopg pipeline: denied, then on", results in (["denied", 3], [3, "denied at exit"]), str(results))
        with psycopg.connect(dsn) as c:  # a transaction: the refusal fails it, as a server error would
            c.execute("SELECT 4")
            try:
                c.execute("DROP TABLE nothing_here")
            except psycopg.errors.InsufficientPrivilege:
                pass
            try:
                c.execute("SELECT 5")
                check("psycopg: transaction failed after the refusal", False, "ran")
            except psycopg.errors.InFailedSqlTransaction:
                check("psycopg: transaction failed after the refusal", True)
            c.rollback()
            check("psycopg: after rollback", c.execute("SELECT 6").fetchone() == (6,))
        con = pymysql.connect(host="127.0.0.1", port=SLUICE_MY + 3, user="app", password="app", database="app")
        try:
            with con.cursor() as cur:
                try:
                    cur.execute("DROP TABLE IF EXISTS nothing_here")
                    check("PyMySQL: DROP denied", False, "ran")
                except pymysql.err.MySQLError as e:
                    check("PyMySQL: DROP denied (1142)", e.args[0] == 1142, str(e))
                cur.execute("SELECT 7")
                check("PyMySQL: connection usable", cur.fetchone() == (7,))
        finally:
            con.close()
        try:
            pymysql.connect(host="127.0.0.1", port=SLUICE_MY + 3, user="blocked", password="b", database="app")
            check("access rule refuses PyMySQL", False, "connected")
        except pymysql.err.MySQLError as e:
            check("access rule refuses PyMySQL (1130)", e.args[0] == 1130, str(e))
    except Exception:
        traceback.print_exc()
        failed += 1
    finally:
        stop_sluice(proc, log, failed)
    return passed, failed


def run_one(fn, target, limit=30):
    """fn(target) in a thread, bounded: a hang is a failure, not a stuck test run."""
    result = [("timeout", f"no answer within {limit} s")]

    def body():
        try:
            result[0] = ("ok", fn(target))
        except Exception as e:  # the exception type and text are part of what is compared
            result[0] = ("exception", type(e).__name__, str(e).split("\n")[0])

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(limit)
    return result[0]


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="sluice-pydrivers-")
    proc, log = start_sluice(binary, work, "sluice", CONFIG)
    passed = failed = 0
    try:
        for _ in range(100):
            try:
                psycopg.connect(pg_dsn("session")).close()
                break
            except Exception:
                time.sleep(0.1)
        my_setup()
        for name, fn, modes in PG_SCENARIOS + MY_SCENARIOS:
            is_my = fn.__name__.startswith("my_")
            want = run_one(fn, my_args() if is_my else pg_dsn())
            if want[0] != "ok":
                print(f"FAILED {name}: directly: {want}")
                failed += 1
                continue
            for m in modes:
                got = run_one(fn, my_args(m) if is_my else pg_dsn(m))
                if got == want:
                    passed += 1
                else:
                    failed += 1
                    print(f"FAILED {name} [{m}]:\n  through Sluice: {str(got)[:400]}\n  directly:       {str(want)[:400]}")
    except Exception:
        traceback.print_exc()
        failed += 1
    finally:
        stop_sluice(proc, log, failed)
    p, f = front_door(binary, work)
    passed += p
    failed += f
    print(f"[doctest] test cases: {passed + failed:5d} | {passed:5d} passed | {failed:5d} failed | 0 skipped", flush=True)
    shutil.rmtree(work, ignore_errors=True)  # (the logs, when they matter, were printed)
    os._exit(1 if failed else 0)  # threads of timed-out scenarios may still hang


if __name__ == "__main__":
    main()
