#!/usr/bin/python3
"""Self cost per function of a callgrind dump kept by BENCH_KEEP (bench/instructions_compare.sh,
bench/instructions_mysql.sh), per transaction. callgrind_annotate 3.19 attributes these dumps
(taken with callgrind_control -d mid-run) to io_context::run alone; this reads the file itself.
A single dump also holds its run's fixed costs (the benches subtract a shorter run), so its total
is a little above their figure.
usage: callgrind_self.py <dump> <transactions> [top=40]
       callgrind_self.py <dump> <transactions> --callers <function substring>
"""
import collections
import re
import sys


def shorten(name):
    for _ in range(5):
        name = re.sub(r"<[^<>]*>", "<>", name)
    return name[:150]


def main():
    path, tx = sys.argv[1], int(sys.argv[2])
    callers_of = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--callers" else None
    top = int(sys.argv[3]) if len(sys.argv) > 3 and not callers_of else 40
    names, self_cost, calls = {}, collections.Counter(), collections.Counter()
    cur = cfn = None
    call_line = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1):
                cfn = m.group(2)
            else:
                cur = m.group(2)
            continue
        m = re.match(r"calls=(\d+)", line)
        if m:
            call_line = True
            if callers_of and callers_of in names.get(cfn, ""):
                calls[cur] += int(m.group(1))
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        if call_line:  # the inclusive cost of the call just named, not this function's own
            call_line = False
            continue
        try:
            self_cost[cur] += int(parts[1])
        except ValueError:
            pass
    if callers_of:
        for k, v in calls.most_common(20):
            print(f"{v / tx:8.2f} calls  {shorten(names.get(k, k))}")
        return
    print(f"total {sum(self_cost.values()) / tx:.0f} instructions per transaction")
    for k, v in self_cost.most_common(top):
        print(f"{v / tx:8.1f}  {shorten(names.get(k, k))}")


if __name__ == "__main__":
    main()
