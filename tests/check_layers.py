#!/usr/bin/python3
"""Includes point down the layering table (docs/architecture.md, "Rooms"): every #include of
another room in src/ and protocols/ must be one that room may depend on. Prints each upward
include and exits 1 when there is one that is not a known, listed debt; prints a doctest-style
summary line. usage: check_layers.py <repository root>
"""
import os
import re
import sys

# room -> rooms it may include (its own room is always allowed).
ALLOWED = {
    "memory": set(),
    "protocols/common": set(),
    "protocols/postgres": {"protocols/common"},
    "protocols/mysql": {"protocols/common"},
    "config": set(),
    "observe": {"config"},
    "net": {"config", "observe", "protocols/common"},
    "sql": set(),
    "access": {"config", "observe", "sql"},
    "replication": set(),
    "cache": {"sql", "replication", "config", "observe"},
    "pool": {"protocols/common", "protocols/postgres", "protocols/mysql", "net", "config", "observe"},
    "router": {"pool", "sql", "replication", "protocols/common", "protocols/postgres", "protocols/mysql", "net",
               "config", "observe"},
    "state": {"access", "cache", "pool", "router", "sql", "replication", "protocols/common", "protocols/postgres",
              "protocols/mysql", "net", "config", "observe"},
}
# Every room may use the slab allocator (memory/), below them all.
for r in ALLOWED:
    if r != "memory":
        ALLOWED[r] = ALLOWED[r] | {"memory"}
ALLOWED["admin"] = ALLOWED["state"] | {"state"}
BELOW_FRONTENDS = {"memory", "access", "pool", "router", "cache", "sql", "replication", "state", "admin", "protocols/common",
                   "protocols/postgres", "protocols/mysql", "net", "config", "observe"}
ALLOWED["frontend/common"] = set(BELOW_FRONTENDS)
ALLOWED["frontend/postgres"] = BELOW_FRONTENDS | {"frontend/common"}
ALLOWED["frontend/mysql"] = BELOW_FRONTENDS | {"frontend/common"}
ALLOWED["app"] = set(ALLOWED) | {"frontend/common", "frontend/postgres", "frontend/mysql"}
ALLOWED["main"] = set(ALLOWED) | {"app"}

# Upward includes that exist and are to go, each with the issue that removes it (none today).
KNOWN_DEBT = set()


def room(path):
    parts = path.split("/")
    if parts[0] == "protocols":
        return "protocols/" + parts[1]
    if parts[1] == "main.cpp":
        return "main"
    if parts[1] == "frontend":
        return "frontend/" + parts[2]
    return parts[1]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    include = re.compile(r'^\s*#\s*include\s+"((?:src|protocols)/[^"]+)"', re.M)
    checked, bad, debt = 0, [], []
    for top in ("src", "protocols"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith((".cpp", ".hpp")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, f), root)
                src = room(path)
                with open(os.path.join(root, path), encoding="utf-8") as fh:
                    for target in include.findall(fh.read()):
                        dst = room(target)
                        checked += 1
                        if dst == src or dst in ALLOWED.get(src, set()):
                            continue
                        (debt if (src, target) in KNOWN_DEBT else bad).append(f"{path} ({src}) -> {target} ({dst})")
    for line in debt:
        print("known upward include:", line)
    for line in bad:
        print("UPWARD INCLUDE:", line)
    print(f"[doctest] test cases: {checked:5d} | {checked - len(bad):5d} passed | {len(bad):5d} failed | 0 skipped")
    sys.exit(1 if bad else 0)


main()
