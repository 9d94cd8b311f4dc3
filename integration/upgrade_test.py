#!/usr/bin/python3
"""Online upgrade (SIGUSR2), as operators and drivers meet it. Sluice runs from a copy of its
binary, with a pid file; the copy is replaced (a new file at the same path, as a package upgrade
does) before every upgrade.

1. Session state crosses: psycopg clients with SET parameters, application_name and a prepared
   statement, one in an open transaction when the upgrade starts (it finishes on the old process,
   then goes), one whose pg_sleep is cancelled after the new process took the listeners (the
   CancelRequest reaches the new process and is passed back to the old one); a PyMySQL client
   with a session variable, whose connection id the new process's SHOW CLIENTS lists. A LISTEN
   client and TLS clients of both protocols, which cannot go, are served by the old process (the
   LISTEN client hears a NOTIFY) until upgrade_timeout. Every client's Sluice-side process id and
   connection id stay.
2. Load across two upgrades in a row (SIGUSR2, then `sluice --upgrade`): pgbench (tpcb-like,
   -M prepared) and sysbench oltp_read_write through Sluice at once: 0 failed transactions, no
   aborted client, 0 reconnects.
3. A new binary that cannot start (an invalid configuration; a listen address already taken):
   the old process logs upgrade_failed and goes on serving both protocols, new connections too.

usage: upgrade_test.py <sluice binary>   (env: SLUICE_TEST_PORT_BASE, SLUICE_PG_PRIMARY_PORT,
SLUICE_MY_PRIMARY_PORT); prints a doctest-style summary line.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psycopg
import pymysql

from sandbox_backends import MY_PORT, PG_PORT, Checks, backends_toml, test_ports

SLUICE_PG, SLUICE_MY, SLUICE_HTTP = test_ports(18570)
LOAD_SECONDS = 12
check = Checks()


CERTS = None  # set by main(): integration/certs.sh's directory


def config(pid_file, listen_pg=None, broken=False):
    return f"""
[general]
workers = 2
log_level = "info"
pid_file = "{pid_file}"
shutdown_timeout = "8s"
upgrade_timeout = "6s"
admin_users = ["app"]
{'max_client_conn = "many"' if broken else ''}
[postgres]
listen = "{listen_pg or f'127.0.0.1:{SLUICE_PG}'}"
tls = "allow"
tls_cert = "{CERTS}/server.pem"
tls_key = "{CERTS}/server.key"
[mysql]
listen = "127.0.0.1:{SLUICE_MY}"
tls = "allow"
tls_cert = "{CERTS}/server.pem"
tls_key = "{CERTS}/server.key"
[http]
listen = "127.0.0.1:{SLUICE_HTTP}"
{backends_toml(pool_size=12)}"""


def pg(**kw):
    kw.setdefault("sslmode", "disable")  # libpq's default (prefer) would take the TLS Sluice offers
    return psycopg.connect(host="127.0.0.1", port=SLUICE_PG, user="app", password="app", dbname="app",
                           connect_timeout=5, **kw)


def my():
    return pymysql.connect(host="127.0.0.1", port=SLUICE_MY, user="app", password="app", database="app",
                           connect_timeout=5, autocommit=True)


def alive(pid):
    """Running (a zombie left for its parent to reap counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Run:
    def __init__(self, work, binary):
        self.work = work
        self.bin = os.path.join(work, "bin", "sluice")
        self.src = binary
        os.makedirs(os.path.dirname(self.bin))
        self.replace_binary()
        self.conf = os.path.join(work, "sluice.toml")
        self.pid_file = os.path.join(work, "sluice.pid")
        self.log = os.path.join(work, "sluice.log")
        self.write_config()
        self.first = subprocess.Popen([self.bin, "-c", self.conf], stderr=open(self.log, "wb"))

    def replace_binary(self):
        """A new file at the binary's path (another inode), as a package upgrade leaves it."""
        tmp = self.bin + ".new"
        shutil.copy2(self.src, tmp)
        os.replace(tmp, self.bin)

    def write_config(self, **kw):
        with open(self.conf, "w") as f:
            f.write(config(self.pid_file, **kw))

    def pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, after, timeout=20.0):
        """Waits (bounded) until `pattern` appears in the log past offset `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text()[after:])
            if m:
                return m
            time.sleep(0.05)
        return None

    def upgrade(self, timeout=20.0, command=False):
        """SIGUSR2 to the running process (`command`: by `sluice --upgrade`, whose exit code and
        output are kept in self.command); returns (old pid, new pid, log offset) once the new
        process wrote the pid file (new pid 0 when it did not within `timeout`)."""
        self.replace_binary()
        old, mark = self.pid(), len(self.text())
        if command:
            r = subprocess.run([self.bin, "--upgrade", "-c", self.conf], capture_output=True, text=True, timeout=90)
            self.command = (r.returncode, (r.stdout + r.stderr).strip())
        else:
            os.kill(old, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.pid()
            if new and new != old:
                return old, new, mark
            time.sleep(0.05)
        return old, 0, mark

    def wait_gone(self, pid, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if pid == self.first.pid:
            self.first.poll()
        return not alive(pid)

    def stop(self):
        pid = self.pid()
        for p in {pid, self.first.pid}:
            if p and alive(p):
                os.kill(p, signal.SIGTERM)
        for p in {pid, self.first.pid}:
            if p:
                self.wait_gone(p, 15)
        self.first.poll()


def wait_ready():
    for _ in range(100):
        try:
            pg().close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


def show_clients():
    with psycopg.connect(host="127.0.0.1", port=SLUICE_PG, user="app", password="app", dbname="sluice",
                         autocommit=True, sslmode="disable") as c:
        cur = c.execute("SHOW CLIENTS")
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def state_across_upgrade(run):
    a = pg(autocommit=True, application_name="upgrade-a")
    a.execute("SET work_mem = '7MB'")
    a.execute("SET application_name = 'upgrade-a2'")
    a.execute("SELECT %s::int + 1", (41,), prepare=True)
    a_pid = a.info.backend_pid
    b = pg()  # in a transaction when the upgrade starts
    b.execute("SELECT 1")
    b_pid = b.info.backend_pid
    c = pg(autocommit=True)  # cancelled while busy on the old process
    m = my()
    with m.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+03:00'")
    m_id = m.thread_id()
    listener = pg(autocommit=True)
    listener.execute("LISTEN upgrade_channel")
    tls_pg = pg(autocommit=True, sslmode="require")
    tls_my = pymysql.connect(host="127.0.0.1", port=SLUICE_MY, user="app", password="app", database="app",
                             connect_timeout=5, autocommit=True, ssl={"ca": f"{CERTS}/ca.pem"})

    sleep_result = {}

    def sleeper():
        t0 = time.monotonic()
        try:
            c.execute("SELECT pg_sleep(6)")
            sleep_result["outcome"] = "finished"
        except psycopg.errors.QueryCanceled:
            sleep_result["outcome"] = "cancelled"
        except Exception as e:  # noqa: BLE001 - reported below
            sleep_result["outcome"] = f"{type(e).__name__}: {e}"
        sleep_result["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=sleeper)
    t.start()
    # The query must be running (on the old process) before the upgrade: asked of the server.
    running = False
    with psycopg.connect(host="127.0.0.1", port=PG_PORT, user="app", password="app", dbname="app",
                         autocommit=True, sslmode="disable") as direct:
        deadline = time.monotonic() + 5
        while not running and time.monotonic() < deadline:
            running = direct.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                     "AND query = 'SELECT pg_sleep(6)'").fetchone()[0] == 1
            time.sleep(0.02)
    check(running, "the query to cancel runs on the server before the upgrade")
    old, new, mark = run.upgrade()
    check(new != 0 and alive(new), f"SIGUSR2: a new process ({new}) took over from {old}")
    ready = run.wait_log(r"the new process listens", mark)
    check(ready is not None, "the old process saw the new one listening")
    c.cancel()  # a new connection: the new process accepts it, the old one has the query
    t.join(10)
    check(sleep_result.get("outcome") == "cancelled" and sleep_result.get("seconds", 99) < 4,
          f"a cancel sent after the takeover reaches the query on the old process ({sleep_result})")
    check(alive(old), "the old process stays while a transaction and a LISTEN client are on it")
    b.execute("SELECT 2")
    b.commit()  # its transaction ends on the old process; then it goes
    time.sleep(0.5)

    check(a.execute("SHOW work_mem").fetchone()[0] == "7MB" and
          a.execute("SHOW application_name").fetchone()[0] == "upgrade-a2",
          "PostgreSQL: SET parameters kept")
    cur = a.cursor()
    cur.execute("SELECT %s::int + 1", (1,), prepare=True)
    check(cur.fetchone()[0] == 2, "PostgreSQL: the prepared statement still runs")
    check(a.info.backend_pid == a_pid and b.info.backend_pid == b_pid, "PostgreSQL: process ids unchanged")
    check(b.execute("SELECT 3").fetchone()[0] == 3, "the client that was in a transaction goes on")
    tls_ok = True
    for _ in range(4):  # idle past the janitor's parking and the upgrade's kicks, then a query
        time.sleep(0.6)
        try:
            tls_ok = tls_ok and tls_pg.execute("SELECT 5").fetchone()[0] == 5
            with tls_my.cursor() as tc:
                tc.execute("SELECT 6")
                tls_ok = tls_ok and tc.fetchone()[0] == 6
        except Exception as e:  # noqa: BLE001 - reported as the failure
            print(e)
            tls_ok = False
    check(tls_ok, "TLS clients on both protocols (which cannot move) go on being served by the old process")
    tls_pg.close()
    tls_my.close()
    check(c.execute("SELECT 4").fetchone()[0] == 4, "the cancelled client goes on")
    with m.cursor() as mc:
        mc.execute("SELECT @@session.time_zone")
        check(mc.fetchone()[0] == "+03:00", "MySQL: the session variable kept")
    clients = show_clients()
    ids = {row.get("id") for row in clients}
    apps = {row.get("application_name") for row in clients}
    check(m_id in ids, f"MySQL: the new process lists the client under its connection id {m_id}")
    check("upgrade-a" in apps, "the new process lists the PostgreSQL client's application_name")
    with psycopg.connect(host="127.0.0.1", port=PG_PORT, user="app", password="app", dbname="app",
                         autocommit=True) as direct:
        direct.execute("NOTIFY upgrade_channel, 'after-upgrade'")
    heard = []
    listener.add_notify_handler(lambda n: heard.append(n.payload))
    deadline = time.monotonic() + 5
    while not heard and time.monotonic() < deadline:
        listener.execute("SELECT 1")  # notifications that came are handled with its answer
        time.sleep(0.1)
    got = heard[0] if heard else None
    check(got == "after-upgrade", "a LISTEN client (which cannot go) is served by the old process meanwhile")
    gone = run.wait_gone(old, 20)
    check(gone, "the old process exits once upgrade_timeout passed for the client that could not go")
    try:
        listener.execute("SELECT 1")
        listener_ended = False
    except psycopg.OperationalError:
        listener_ended = True
    check(listener_ended, "that client was told the old process shut down")
    for conn in (a, b, c, listener):
        conn.close()
    m.close()


def load_across_upgrades(run):
    env = dict(os.environ, PGPASSWORD="app", PGSSLMODE="disable")
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "app", "app"],
                   env=env, capture_output=True, check=False)
    common = ["--db-driver=mysql", "--mysql-user=app", "--mysql-password=app", "--mysql-db=app", "--tables=2",
              "--table-size=5000"]
    subprocess.run(["sysbench", "oltp_read_write", *common, "--mysql-host=127.0.0.1", f"--mysql-port={MY_PORT}",
                    "cleanup"], capture_output=True, check=False)
    subprocess.run(["sysbench", "oltp_read_write", *common, "--mysql-host=127.0.0.1", f"--mysql-port={MY_PORT}",
                    "--threads=2", "prepare"], capture_output=True, check=False)
    pgbench = subprocess.Popen(["timeout", "120", "pgbench", "-n", "-c", "8", "-j", "2", "-T", str(LOAD_SECONDS),
                                "-M", "prepared", "-h", "127.0.0.1", "-p", str(SLUICE_PG), "-U", "app", "app"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sysbench = subprocess.Popen(["timeout", "120", "sysbench", "oltp_read_write", *common, "--mysql-host=127.0.0.1",
                                 f"--mysql-port={SLUICE_MY}", "--mysql-ssl=off", "--threads=8",
                                 f"--time={LOAD_SECONDS}",
                                 "--mysql-ignore-errors=1213,1205", "run"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    handed = []
    start = time.monotonic()
    for at in (3, 7):
        time.sleep(max(0.0, start + at - time.monotonic()))
        old, new, mark = run.upgrade(command=at == 7)
        if at == 7:
            check(run.command[0] == 0 and f"process {new} took over from {old}" in run.command[1],
                  f"sluice --upgrade: exit {run.command[0]}, \"{run.command[1]}\"")
        done = run.wait_log(r"upgrade: done; (\d+) clients went to the new process", mark)
        handed.append(int(done.group(1)) if done else -1)
        check(new != 0 and done is not None and run.wait_gone(old, 10),
              f"upgrade under load: {old} -> {new}, {handed[-1]} clients handed over, the old process gone")
    pg_out, _ = pgbench.communicate(timeout=150)
    sb_out, _ = sysbench.communicate(timeout=150)
    processed = re.search(r"number of transactions actually processed: (\d+)", pg_out)
    failed = re.search(r"number of failed transactions: (\d+)", pg_out)
    check(processed and int(processed.group(1)) > 0 and failed and failed.group(1) == "0" and
          "aborted" not in pg_out and "error" not in pg_out.lower(),
          f"pgbench tpcb-like -M prepared across 2 upgrades: {processed and processed.group(1)} transactions, "
          f"{failed and failed.group(1)} failed, no client aborted")
    tx = re.search(r"transactions:\s+(\d+)", sb_out)
    reconnects = re.search(r"reconnects:\s+(\d+)", sb_out)
    ignored = re.search(r"ignored errors:\s+(\d+)", sb_out)
    check(tx and int(tx.group(1)) > 0 and reconnects and reconnects.group(1) == "0" and "FATAL" not in sb_out,
          f"sysbench oltp_read_write across 2 upgrades: {tx and tx.group(1)} transactions, "
          f"{reconnects and reconnects.group(1)} reconnects, "
          f"{ignored and ignored.group(1)} deadlocks or lock waits retried (the workload's), no other error")
    check(all(h >= 16 for h in handed), f"every load client went to the new process each time ({handed} of 16)")
    if check.failures:
        print(pg_out[-2000:], sb_out[-2000:], sep="\n")


def failed_upgrades(run):
    for what, kw in (("an invalid configuration", {"broken": True}),
                     ("a listen address already taken", {"listen_pg": f"127.0.0.1:{PG_PORT}"})):
        before = run.pid()
        run.write_config(**kw)
        old, new, mark = run.upgrade(timeout=3)
        failed = run.wait_log(r"upgrade failed: ([^\n]*)", mark)
        check(new == 0 and failed is not None and alive(before) and run.pid() == before,
              f"{what}: upgrade_failed logged ({failed.group(1) if failed else '-'}), the old process stays")
        ok = True
        try:
            with pg(autocommit=True) as c:  # a new connection: the listener is still the old process's
                ok = c.execute("SELECT 1").fetchone()[0] == 1
            m = my()
            with m.cursor() as cur:
                cur.execute("SELECT 1")
                ok = ok and cur.fetchone()[0] == 1
            m.close()
        except Exception as e:  # noqa: BLE001 - reported as the failure
            print(e)
            ok = False
        check(ok, f"{what}: both protocols still served, new connections accepted")
    run.write_config(broken=True)
    old, new, _ = run.upgrade(timeout=1, command=True)
    check(run.command[0] == 1 and "invalid configuration" in run.command[1] and new == 0 and alive(old),
          f"sluice --upgrade with an invalid file: exit {run.command[0]} before any signal, \"{run.command[1]}\"")
    run.write_config()


def main():
    global CERTS
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="sluice-upgrade-")
    CERTS = os.path.join(work, "certs")
    subprocess.run([os.environ.get("SLUICE_CERTS_SCRIPT", os.path.join(os.path.dirname(__file__), "certs.sh")), CERTS],
                   check=True, capture_output=True)
    try:
        run = Run(work, binary)
        try:
            check(wait_ready(), "Sluice started")
            state_across_upgrade(run)
            load_across_upgrades(run)
            failed_upgrades(run)
        except Exception as e:  # noqa: BLE001 - a step that raised is a failure, and the rest still stops
            check(False, f"the test ran to its end ({type(e).__name__}: {e})")
        finally:
            run.stop()
        text = run.text()
        check("ERROR: AddressSanitizer" not in text and "runtime error:" not in text, "no sanitizer report")
        code = check.summary()
        if code:
            print(text[-6000:], file=sys.stderr)
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)  # whatever happened: no scratch directory left


if __name__ == "__main__":
    sys.exit(main())
