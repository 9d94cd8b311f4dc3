"""What the Python integration tests that start their own Sluice share: the sandbox's server ports
(from the environment the test command sets), the app user with a PostgreSQL and a MySQL
transaction-mode pool on them (as TOML to put after a test's own sections), and doctest-style
checks with the summary line the test runner counts."""
import os

PG_PORT = int(os.environ.get("SLUICE_PG_PRIMARY_PORT", "15432"))
MY_PORT = int(os.environ.get("SLUICE_MY_PRIMARY_PORT", "13306"))


def test_ports(default_base, count=3):
    """The ports a test's Sluice listens on: SLUICE_TEST_PORT_BASE (or `default_base`) onwards."""
    base = int(os.environ.get("SLUICE_TEST_PORT_BASE", str(default_base)))
    return tuple(base + i for i in range(count))


def backends_toml(password="app", pool_size=None):
    """[[users]] app, clusters pg and my on the sandbox's primaries, and database app on each in
    transaction mode."""
    size = f"\npool_size = {pool_size}" if pool_size else ""
    return f"""[[users]]
name = "app"
password = "{password}"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:{PG_PORT}"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:{MY_PORT}"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"{size}
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"{size}
"""


class Checks:
    """Named checks, printed as they run; summary() prints the doctest-style line and returns
    the exit code."""

    def __init__(self):
        self.cases, self.failures = [], []

    def __call__(self, ok, what):
        self.cases.append(what)
        print(("ok: " if ok else "FAIL: ") + what, flush=True)
        if not ok:
            self.failures.append(what)

    def summary(self):
        n, bad = len(self.cases), len(self.failures)
        print(f"[doctest] test cases: {n} | {n - bad} passed | {bad} failed |")
        return 1 if bad else 0
