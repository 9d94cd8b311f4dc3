#!/usr/bin/python3
"""Self cost per function of a callgrind dump kept by BENCH_KEEP (bench/instructions_compare.sh,
bench/instructions_mysql.sh), per transaction. callgrind_annotate 3.19 attributes these dumps
(taken with callgrind_control -d mid-run) to io_context::run alone; this reads the file itself.
A single dump also holds its run's fixed costs (the benches subtract a shorter run), so its total
is a little above their figure.
usage: callgrind_self.py <dump> <transactions> [top=40]
       callgrind_self.py <dump> <transactions> --callers <function substring>  (calls and the
         instructions spent in them, inclusive, per transaction, by caller)
       callgrind_self.py <dump> <transactions> --callees <function substring>  (the same, by
         callee, of the calls the matching functions make)
       callgrind_self.py <dump> <transactions> --lines <function substring>
--lines needs a dump with line numbers: a -gdwarf-4 build run with BENCH_KEEP_DEBUG=1 (Valgrind
3.19 cannot read DWARF 5). Line 0 is code the compiler gave no line (a coroutine's dispatch).
"""
import collections
import re
import sys


def shorten(name):
    for _ in range(5):
        name = re.sub(r"<[^<>]*>", "<>", name)
    return name[:150]


def fn_ref(line, names):
    """A fn= or cfn= line: (whether it names a callee, its id), its name remembered; else None."""
    m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
    if not m:
        return None
    if m.group(3):
        names[m.group(2)] = m.group(3)
    return bool(m.group(1)), m.group(2)


def main():
    path, tx = sys.argv[1], int(sys.argv[2])
    callers_of = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--callers" else None
    callees_of = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--callees" else None
    if len(sys.argv) > 4 and sys.argv[3] == "--lines":
        return lines_of(path, tx, sys.argv[4])
    top = int(sys.argv[3]) if len(sys.argv) > 3 and not (callers_of or callees_of) else 40
    names, self_cost, calls, spent = {}, collections.Counter(), collections.Counter(), collections.Counter()
    cur = cfn = None
    call_line = False
    counted = False  # the call just named is one --callers counts: its cost line is the callee's
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        ref = fn_ref(line, names)
        if ref:
            if ref[0]:
                cfn = ref[1]
            else:
                cur = ref[1]
            continue
        m = re.match(r"calls=(\d+)", line)
        if m:
            call_line = True
            counted = bool(callers_of and callers_of in names.get(cfn, ""))
            if counted:
                calls[cur] += int(m.group(1))
            elif callees_of and callees_of in names.get(cur, ""):
                counted = True
                calls[cfn] += int(m.group(1))
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        if call_line:  # the inclusive cost of the call just named, not this function's own
            call_line = False
            if counted:
                spent[cfn if callees_of else cur] += int(parts[1]) if parts[1].isdigit() else 0
            continue
        try:
            self_cost[cur] += int(parts[1])
        except ValueError:
            pass
    if callers_of or callees_of:
        for k, v in (sorted(calls.items(), key=lambda kv: -spent[kv[0]])[:30] if callees_of else calls.most_common(20)):
            print(f"{v / tx:8.2f} calls {spent[k] / tx:10.1f} instr  {shorten(names.get(k, k))}")
        return
    print(f"total {sum(self_cost.values()) / tx:.0f} instructions per transaction")
    for k, v in self_cost.most_common(top):
        print(f"{v / tx:8.1f}  {shorten(names.get(k, k))}")


def lines_of(path, tx, wanted):
    """Self cost per source line (inlined files included) of the functions whose name holds `wanted`."""
    files, names, cost = {}, {}, collections.Counter()
    fl = fi = None
    cur = ""
    last = 0
    call_line = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"(fl|fi|fe|cfi|cfl)=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                files[m.group(2)] = m.group(3)
            if m.group(1) == "fl":
                fl = fi = m.group(2)
            elif m.group(1) in ("fi", "fe"):
                fi = m.group(2)
            continue
        ref = fn_ref(line, names)
        if ref:
            if not ref[0]:
                cur = names.get(ref[1], "")
                fi = fl
            continue
        if line.startswith("calls="):
            call_line = True
            parts = line.split()
            last = position(parts[1] if len(parts) > 1 else "*", last)
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        last = position(parts[0], last)
        if call_line:
            call_line = False
            continue
        if wanted in cur and len(parts) > 1:
            cost[(files.get(fi, "?"), last)] += int(parts[1])
    print(f"{sum(cost.values()) / tx:.0f} instructions per transaction in functions matching {wanted!r}")
    for (f, ln), v in cost.most_common(60):
        print(f"{v / tx:8.1f}  {f.split('/work/main/')[-1][-60:]}:{ln}")


def position(tok, last):
    if tok == "*":
        return last
    if tok[0] in "+-":
        return last + int(tok)
    return int(tok)


if __name__ == "__main__":
    main()
