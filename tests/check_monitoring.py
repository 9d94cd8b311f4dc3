#!/usr/bin/python3
"""docs/monitoring: the Grafana dashboard and the Prometheus alert rules are well formed.
- the dashboard is JSON, every panel has a data source, a position and at least one PromQL target;
- every PromQL expression of the dashboard parses (promtool check rules, each made a recording
  rule with Grafana's variables filled in);
- the alert rules pass `promtool check rules`, and `promtool test rules` (sluice-alerts.test.yml:
  each alert fires on the series that should fire it).
That every metric they name is one Sluice exports is checked against a running Sluice by
integration/admin_test.cpp. usage: check_monitoring.py <repository root> <promtool>
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    root, promtool = sys.argv[1], os.path.abspath(sys.argv[2])
    mon = os.path.join(root, "docs", "monitoring")
    failures, cases = [], 0

    def check(ok, what):
        nonlocal cases
        cases += 1
        if not ok:
            failures.append(what)
            print("FAIL:", what)

    with open(os.path.join(mon, "sluice-dashboard.json"), encoding="utf-8") as f:
        dash = json.load(f)
    exprs = []
    for p in dash.get("panels", []):
        title = p.get("title", "?")
        check(bool(p.get("datasource")) and bool(p.get("gridPos")), f"panel {title}: data source and position")
        targets = [t.get("expr", "") for t in p.get("targets", [])]
        check(targets and all(targets), f"panel {title}: PromQL targets")
        exprs += [(title, e) for e in targets]
    check(len(exprs) >= 10, "the dashboard has its panels")

    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "dashboard-rules.yml")
        with open(rules, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, e) in enumerate(exprs):
                e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
                f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(e)}\n")
        r = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
        check(r.returncode == 0, "every dashboard expression parses: " + r.stdout + r.stderr)
    r = subprocess.run([promtool, "check", "rules", os.path.join(mon, "sluice-alerts.yml")], capture_output=True,
                       text=True)
    print(r.stdout.strip())
    check(r.returncode == 0, "promtool check rules sluice-alerts.yml: " + r.stderr)
    r = subprocess.run([promtool, "test", "rules", "sluice-alerts.test.yml"], cwd=mon, capture_output=True, text=True)
    print(r.stdout.strip())
    check(r.returncode == 0, "promtool test rules sluice-alerts.test.yml: " + r.stdout + r.stderr)
    print(f"[doctest] test cases: {cases} | {cases - len(failures)} passed | {len(failures)} failed |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
