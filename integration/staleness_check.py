#!/usr/bin/python3
"""Staleness checker for the result cache with invalidation = "stream" (issue 22): two Sluice
instances in front of the sandbox's PostgreSQL primary and replica, the cache on for every read.
A writer bumps a version, in turn directly on the primary (bypassing Sluice) and through each
instance; readers (half on each instance) read the version with a cacheable query. A read that
started at t must return at least the highest version whose commit was acknowledged before
t - BOUND, where BOUND is what the documentation allows: max_replica_lag (a replica within it may
serve reads) plus the stream's lag allowance. Prints the counts and a doctest-style summary line;
exits 1 on any read older than that.

With SLUICE_STALENESS_REDIS=host:port the instances share that Redis ([cache] shared); with
SLUICE_STALENESS_KILL_REDIS=<integration/sandbox.sh> as well, the sandbox's Redis is killed
(SIGKILL) a third of the way in and started again (empty) at two thirds, and the hit ratios and
Redis hits of each phase are printed: the answers must stay as fresh, and caching go on locally.

usage: staleness_check.py <sluice binary> [seconds] [readers]
env: SLUICE_PG_HOST, SLUICE_PG_PRIMARY_PORT, SLUICE_PG_REPLICA_HOST, SLUICE_PG_REPLICA_PORT
(default 127.0.0.1 and the sandbox's ports), SLUICE_TEST_PORT_BASE (the two instances' ports).
"""
import bisect
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

PG_HOST = os.environ.get("SLUICE_PG_HOST", "127.0.0.1")
REPLICA_HOST = os.environ.get("SLUICE_PG_REPLICA_HOST", PG_HOST)
PG_PORT = int(os.environ.get("SLUICE_PG_PRIMARY_PORT", "15432"))
REPLICA_PORT = int(os.environ.get("SLUICE_PG_REPLICA_PORT", "15433"))
BASE = int(os.environ.get("SLUICE_TEST_PORT_BASE", "26560"))
MAX_REPLICA_LAG_S = 0.5
STREAM_LAG_S = 1.0  # with the sandbox's synchronous_commit = off: up to wal_writer_delay, and more
BOUND = MAX_REPLICA_LAG_S + STREAM_LAG_S
REDIS = os.environ.get("SLUICE_STALENESS_REDIS", "")
KILL_REDIS = os.environ.get("SLUICE_STALENESS_KILL_REDIS", "")


def config(port):
    return f"""
[general]
workers = 2
log_level = "warn"
admin_users = ["admin"]
[postgres]
listen = "127.0.0.1:{port}"
[[users]]
name = "app"
password = "app"
[[users]]
name = "admin"
password = "adminpw"
[[users]]
name = "streamer"
password = "streamer"
[clusters.pg]
protocol = "postgres"
primary = "{PG_HOST}:{PG_PORT}"
replicas = ["{REPLICA_HOST}:{REPLICA_PORT}"]
health_check_period = "100ms"
max_replica_lag = "{int(MAX_REPLICA_LAG_S * 1000)}ms"
stream_user = "streamer"
[[pools]]
database = "app"
cluster = "pg"
pool_size = 8
[cache]
mode = "all"
default_ttl = "600s"
invalidation = "stream"
""" + (f'shared = "{REDIS}"\n' if REDIS else "")


def counters(ports):
    """Per instance: (cache hits, cache misses, Redis hits, Redis lookups)."""
    out = []
    for port in ports:
        with psycopg.connect(conninfo(port, "admin", "adminpw", "sluice"), autocommit=True) as adm:
            row = adm.execute("SHOW CACHE").fetchone()
            shared = adm.execute("SHOW CACHE_SHARED").fetchone() if REDIS else None
            out.append((row[5], row[6], shared[3] if shared else 0, shared[2] if shared else 0))
    return out


def phase_line(name, before, after):
    parts = []
    for b, a in zip(before, after):
        hits, misses = a[0] - b[0], a[1] - b[1]
        ratio = hits / (hits + misses) if hits + misses else 0.0
        parts.append(f"hit ratio {ratio:.3f}, {a[2] - b[2]} Redis hits of {a[3] - b[3]} lookups")
        # (a lookup: a local miss that asked Redis; misses while Redis is left alone do not ask)
    return f"{name}: " + "; ".join(parts)


def conninfo(port, user="app", password="app", db="app", host="127.0.0.1"):
    return f"host={host} port={port} user={user} password={password} dbname={db} sslmode=disable"


def main():
    binary = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    readers = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    ports = [BASE, BASE + 1]
    work = tempfile.mkdtemp(prefix="sluice-stale-")
    procs = []
    passed = False
    direct = psycopg.connect(conninfo(PG_PORT, host=PG_HOST), autocommit=True)
    direct.execute("DROP TABLE IF EXISTS stale_check")
    direct.execute("CREATE TABLE stale_check (id int PRIMARY KEY, version bigint NOT NULL)")
    direct.execute("INSERT INTO stale_check VALUES (1, 0)")
    try:
        for port in ports:
            path = os.path.join(work, f"sluice-{port}.toml")
            with open(path, "w") as f:
                f.write(config(port))
            log = open(path + ".log", "w")
            procs.append(subprocess.Popen([binary, "-c", path], stderr=log))
        for port in ports:  # each instance's stream up
            deadline = time.time() + 20
            while True:
                try:
                    with psycopg.connect(conninfo(port, "admin", "adminpw", "sluice"), autocommit=True) as adm:
                        rows = adm.execute("SHOW CACHE_STREAMS").fetchall()
                        if rows and all(r[2] for r in rows):
                            break
                except psycopg.Error:
                    pass
                if time.time() > deadline:
                    raise SystemExit(f"the change stream of the instance on {port} did not come up")
                time.sleep(0.1)

        acks = []  # (monotonic time acknowledged, version), in order
        acks_lock = threading.Lock()
        stop = threading.Event()
        errors = []
        stats = {"reads": 0, "stale": 0, "worst_s": 0.0, "writes": 0}
        stats_lock = threading.Lock()

        def writer():
            conns = [direct] + [psycopg.connect(conninfo(p), autocommit=True) for p in ports]
            version = 0
            while not stop.is_set():
                version += 1
                conn = conns[version % len(conns)]
                try:
                    conn.execute("UPDATE stale_check SET version = %s WHERE id = 1", (version,))
                except psycopg.Error as e:
                    errors.append(f"write {version}: {e}")
                    return
                with acks_lock:
                    acks.append((time.monotonic(), version))
                time.sleep(0.02)
            with stats_lock:
                stats["writes"] = version

        def reader(port):
            conn = psycopg.connect(conninfo(port), autocommit=True)
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    got = conn.execute("SELECT version FROM stale_check WHERE id = 1").fetchone()[0]
                except psycopg.Error as e:
                    errors.append(f"read on {port}: {e}")
                    return
                with acks_lock:
                    # The highest version acknowledged before t0 - BOUND: versions only grow.
                    i = bisect.bisect_right(acks, (t0 - BOUND, float("inf")))
                    floor = acks[i - 1][1] if i else 0
                    # How old the answer was: since the first version above it was acknowledged.
                    j = bisect.bisect_right([v for _, v in acks[max(0, i - 400):]], got)
                    newer = acks[max(0, i - 400) + j][0] if max(0, i - 400) + j < len(acks) else None
                age = max(0.0, t0 - newer) if newer is not None and newer < t0 else 0.0
                with stats_lock:
                    stats["reads"] += 1
                    stats["worst_s"] = max(stats["worst_s"], age)
                    if got < floor:
                        stats["stale"] += 1
            conn.close()

        threads = [threading.Thread(target=writer)]
        threads += [threading.Thread(target=reader, args=(ports[i % 2],)) for i in range(readers)]
        for t in threads:
            t.start()
        phases = []
        if KILL_REDIS:
            third = seconds / 3
            c0 = counters(ports)
            time.sleep(third)
            c1 = counters(ports)
            pid = subprocess.run([KILL_REDIS, "pid", "redis"], capture_output=True, text=True).stdout.strip()
            os.kill(int(pid), signal.SIGKILL)
            time.sleep(third)
            c2 = counters(ports)
            subprocess.run([KILL_REDIS, "start-redis"], capture_output=True, check=True)
            time.sleep(seconds - 2 * third)
            c3 = counters(ports)
            phases = [phase_line("Redis up", c0, c1), phase_line("Redis killed", c1, c2),
                      phase_line("Redis back, empty", c2, c3)]
        else:
            time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        hits = []
        for port in ports:
            with psycopg.connect(conninfo(port, "admin", "adminpw", "sluice"), autocommit=True) as adm:
                row = adm.execute("SHOW CACHE").fetchone()
                hits.append((row[5], row[6]))
        print(f"{seconds:.0f} s, {readers} readers over two instances{' sharing Redis' if REDIS else ''}, one writer (a third of its writes "
              f"directly on the primary): {stats['writes']} writes, {stats['reads']} reads, "
              f"{stats['stale']} older than the writer's last acknowledged commit {BOUND:.1f} s before the read; "
              f"oldest answer {stats['worst_s'] * 1000:.0f} ms behind; cache hits/misses per instance {hits}")
        for line in phases:
            print(line)
        for e in errors[:5]:
            print("error:", e)
        ok = stats["stale"] == 0 and not errors and stats["reads"] > 0 and all(h > 0 for h, _ in hits)
        passed = ok
        if not ok:
            print(f"the instances' configurations and logs are in {work}")
        print(f"[doctest] test cases: 1 | {1 if ok else 0} passed | {0 if ok else 1} failed |")
        return 0 if ok else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=35)
            except subprocess.TimeoutExpired:
                p.kill()
        try:
            direct.execute("DROP TABLE IF EXISTS stale_check")
        except psycopg.Error:
            pass
        if passed:  # kept for a look when something failed
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
