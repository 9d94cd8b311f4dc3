#!/usr/bin/python3
"""log_format = "json" and the slow-query log, read the way a log pipeline reads them: Sluice runs
with JSON logs while PostgreSQL (psycopg) and MySQL (PyMySQL) clients log in, fail to log in, ask
for an unknown database, run fast and slow statements (simple, extended and prepared) and leave.
Every line of its log must be one JSON object with the stable keys; the events must carry the
client, address, user, database and reason; slow statements must be logged with their
fingerprint and duration and never their values (a literal and a bound parameter are planted),
then with log_parameters = true (after a reload) with the text. No password ever appears.

usage: json_logs_test.py <sluice binary>   (env: SLUICE_TEST_PORT_BASE, SLUICE_PG_PRIMARY_PORT,
SLUICE_MY_PRIMARY_PORT); prints a doctest-style summary line.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg
import pymysql

from sandbox_backends import Checks, backends_toml, test_ports

SLUICE_PG, SLUICE_MY = test_ports(18560, 2)
SECRET_LITERAL = "planted-literal-7f3a"
SECRET_PARAM = "planted-param-91bc"
PASSWORD = "app"
WRONG = "wrong-password-5d2e"


def config(parameters):
    return f"""
[general]
workers = 2
log_level = "info"
log_format = "json"
log_min_duration = "150ms"
log_parameters = {"true" if parameters else "false"}
[postgres]
listen = "127.0.0.1:{SLUICE_PG}"
[mysql]
listen = "127.0.0.1:{SLUICE_MY}"
{backends_toml(PASSWORD)}"""


check = Checks()


def pg(password=PASSWORD, dbname="app"):
    return psycopg.connect(host="127.0.0.1", port=SLUICE_PG, user="app", password=password, dbname=dbname,
                           connect_timeout=5)


def my(password=PASSWORD, database="app"):
    return pymysql.connect(host="127.0.0.1", port=SLUICE_MY, user="app", password=password, database=database,
                           connect_timeout=5)


def workload():
    with pg() as c:
        c.execute("SELECT 1")
        c.execute(f"SELECT pg_sleep(0.2), '{SECRET_LITERAL}'")  # simple protocol, slow
        c.execute("SELECT pg_sleep(0.2), %s::text", (SECRET_PARAM,), prepare=True)  # extended, slow
    for bad in (lambda: pg(password=WRONG), lambda: pg(dbname="no_such_db")):
        try:
            bad().close()
        except psycopg.OperationalError:
            pass
    c = my()
    with c.cursor() as cur:
        cur.execute("SELECT 1")
        cur.execute(f"SELECT SLEEP(0.2), '{SECRET_LITERAL}'")
    c.close()
    for bad in (lambda: my(password=WRONG), lambda: my(database="no_such_db")):
        try:
            bad().close()
        except pymysql.err.OperationalError:
            pass


def read_lines(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8").splitlines()


def logged(path):
    """The events logged so far (lines that do not parse are judged later, not here)."""
    out = []
    for line in read_lines(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for(path, ready, what, timeout=10.0):
    """Polls the log (bounded) until ready(events) holds; a timeout is left to the checks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready(logged(path)):
            return
        time.sleep(0.05)
    print(f"note: waited {timeout} s for {what}")


def count(events, name):
    return sum(1 for e in events if e.get("event") == name)


def sessions_ended(events):
    """Every client that logged in has logged its disconnect."""
    return count(events, "client_connected") == count(events, "client_disconnected")


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="sluice-jsonlogs-")
    conf, log = os.path.join(work, "sluice.toml"), os.path.join(work, "sluice.log")
    with open(conf, "w") as f:
        f.write(config(False))
    proc = subprocess.Popen([binary, "-c", conf], stderr=open(log, "wb"))
    try:
        for _ in range(100):
            try:
                pg().close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        workload()
        # The disconnects are logged once the sessions end (after the clients have left).
        wait_for(log, lambda ev: sessions_ended(ev) and count(ev, "slow_query") >= 3, "the first sessions' ends")
        first = len(read_lines(log))
        with open(conf, "w") as f:
            f.write(config(True))
        proc.send_signal(signal.SIGHUP)
        wait_for(log, lambda ev: count(ev, "reloaded") >= 1, "the reload")
        with pg() as c:
            c.execute(f"SELECT pg_sleep(0.2), '{SECRET_LITERAL}'")
        c = my()
        with c.cursor() as cur:
            cur.execute(f"SELECT SLEEP(0.2), '{SECRET_LITERAL}'")
        c.close()
        wait_for(log, lambda ev: sessions_ended(ev) and count(ev, "slow_query") >= 5, "the last sessions' ends")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = read_lines(log)
    events = []
    bad = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(obj, dict) or not all(k in obj for k in ("time", "level", "event", "message")):
            bad.append(line)
        events.append(obj)
    check(len(lines) >= 10 and not bad, f"every one of {len(lines)} log lines is a JSON object with time, level, "
                                        f"event and message (not: {bad[:3]})")
    check(all(e["level"] in ("debug", "info", "warn", "error") for e in events), "levels are the four names")
    check(all(e["time"].endswith("Z") and e["time"][10] == "T" for e in events), "times are UTC ISO 8601")
    text = "\n".join(lines)
    check(WRONG not in text and "password = " not in text and '"password"' not in text,
          "no password in the log (a wrong one a client typed included)")
    before, after = events[:first], events[first:]

    def having(evs, **kw):
        return [e for e in evs if all(e.get(k) == v for k, v in kw.items())]

    for proto_db in ("app",):
        conn = having(before, event="client_connected", user="app", database=proto_db)
        check(len(conn) >= 3 and all(isinstance(e.get("client_id"), int) and e.get("address") == "127.0.0.1"
                                     and isinstance(e.get("port"), int) for e in conn),
              f"client_connected: client_id, address, port, user, database ({len(conn)} of them)")
        gone = having(before, event="client_disconnected", user="app")
        check(len(gone) >= 3 and all(e.get("reason") for e in gone), "client_disconnected with a reason")
    refused = having(before, event="client_refused")
    reasons = " | ".join(e.get("reason", "") for e in refused)
    check(any("unknown database" in e.get("reason", "") and e.get("database") == "no_such_db" for e in refused),
          f"client_refused: unknown database, on both protocols ({reasons})")
    check(len([e for e in refused if e.get("user") == "app"]) >= 4,
          f"client_refused for the wrong passwords and the unknown databases ({len(refused)})")
    slow = having(before, event="slow_query")
    check(len(slow) >= 3, f"3 slow statements logged ({len(slow)}: {[e.get('fingerprint') for e in slow]})")
    check(all(e.get("duration_ms", 0) >= 150 and e.get("fingerprint") and e.get("user") == "app"
              and e.get("database") == "app" and isinstance(e.get("client_id"), int) for e in slow),
          "slow_query: fingerprint, duration_ms >= 150, user, database, client_id")
    check(not any(e.get("statement") for e in slow), "without log_parameters: no statement text")
    check(SECRET_LITERAL not in "\n".join(lines[:first]) and SECRET_PARAM not in text,
          "without log_parameters: neither the literal nor the bound value appears anywhere")
    check(not any(e.get("event") == "slow_query" and "SELECT 1" in e.get("fingerprint", "") for e in events),
          "fast statements are not logged")
    slow_after = having(after, event="slow_query")
    check(len(slow_after) >= 2 and all(SECRET_LITERAL in e.get("statement", "") for e in slow_after),
          f"with log_parameters (after a reload): the statement text ({len(slow_after)})")
    check(having(events, event="reloaded") != [] and having(events, event="started") != []
          and having(events, event="stopped") != [], "started, reloaded and stopped events")
    code = check.summary()
    if code:
        print(open(log).read()[-4000:], file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
