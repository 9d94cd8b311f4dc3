#!/usr/bin/env python3
"""Who preempts a proxy, and whom it wakes where (bench/kernel_profile.sh, BENCH_SCHED=1).

Reads `perf script -F comm,tid,cpu,event,trace` output of sched:sched_switch and
sched:sched_wakeup events recorded system-wide, and prints for the proxy (threads whose command
name is one of PROXY_COMMS) per transaction: how often it was switched out while still runnable
(preempted) and by what, and how often it woke each kind of task, on its own CPU or the other.

  perf script -i f.data -F comm,tid,cpu,event,trace | bench/sched_summary.py TRANSACTIONS COMM...
"""
import collections
import re
import sys

SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=\d+ prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=\d+")
WAKEUP = re.compile(r"^\s*(\S+)\s+\d+\s+\[(\d+)\].*sched_wakeup:\s+comm=(.*?) pid=\d+ prio=\d+ target_cpu=(\d+)")


def kind(comm):
    """A task's kind: its command name without a per-instance suffix (ksoftirqd/1, kworker/u8:0)."""
    return comm.split("/")[0].split(":")[0]


def main():
    tx = int(sys.argv[1])
    proxy = set(sys.argv[2:])
    switched = 0
    preempted = collections.Counter()
    woke = collections.Counter()
    for line in sys.stdin:
        if "sched_switch" in line:
            m = SWITCH.search(line)
            if m and m.group(1) in proxy:
                switched += 1
                if m.group(2).startswith("R"):
                    preempted[kind(m.group(3))] += 1
        elif "sched_wakeup" in line:
            m = WAKEUP.search(line)
            if m and m.group(1) in proxy:
                where = "same CPU" if m.group(2) == m.group(4) else "other CPU"
                woke[(kind(m.group(3)), where)] += 1
    print(f"  switched out {switched / tx:.3f}, of which preempted {sum(preempted.values()) / tx:.3f} per transaction")
    for who, n in preempted.most_common(3):
        print(f"    preempted by {who}: {n / tx:.3f}")
    for (who, where), n in sorted(woke.items(), key=lambda kv: -kv[1])[:4]:
        print(f"    woke {who} on the {where}: {n / tx:.3f}")


if __name__ == "__main__":
    main()
