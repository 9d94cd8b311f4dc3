#!/usr/bin/python3
"""Coroutine shapes that GCC 12 (Debian 12's compiler) miscompiles, kept out of the code so that
both compilers build a correct Sluice (docs/design-decisions.md, "Build"). Each one was reproduced
with GCC 12.2 and Boost.Asio's awaitable (tests/gcc12_shapes.cpp builds the old shapes):

  condition  `co_await` inside the condition of if/while/for/switch. In a coroutine that declares
             no local variable GCC gives the awaiter no frame slot: it writes past the frame
             (SIGILL or SIGSEGV on the next resume). Await into a variable first, or in an
             if-statement's initializer (`if (bool ok = co_await read(); !ok)`) or a condition
             that declares it (`if (auto r = co_await lookup())`).
  braces     a `{` inside a co_await's operand: a braced list (`f({"GET", key})`) does not
             compile ("array used as initializer"); an aggregate temporary (`drive(Parked{...})`)
             is destroyed twice; lambdas with captures there are reported double-freed too.
             Build the value in a local and pass that.
  ternary    `?:` inside a co_await's operand (temporaries of the branch destroyed twice).

Prints each offending line and a doctest-style summary; exits 1 when there is one.
usage: check_coroutine_shapes.py <repository root>
"""
import os
import re
import sys

ROOTS = ("src", "protocols", "tests", "integration", "bench", "fuzz")
KEYWORDS = ("if", "while", "for", "switch")


def strip(text):
    """Comments, string and character literals blanked (same length, newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + '"')
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator 1'000
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def word_before(text, i):
    """The identifier ending just before position i (spaces skipped)."""
    j = i
    while j > 0 and text[j - 1].isspace():
        j -= 1
    k = j
    while k > 0 and (text[k - 1].isalnum() or text[k - 1] == "_"):
        k -= 1
    return text[k:j]


def in_condition(text, pos):
    """Whether the co_await at pos is in an if/while/for/switch condition (not in an
    if-statement's initializer, which ends with ';' before the condition)."""
    depth = 0
    i = pos - 1
    while i >= 0:
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                if word_before(text, i) in KEYWORDS:
                    # a condition that declares the variable it awaits into is one
                    if re.fullmatch(r"\s*(const\s+)?[\w:<>]+\s*[&*]?\s*\w+\s*=\s*", text[i + 1:pos]):
                        return False
                    # in the initializer when a ';' follows at this level before the ')'
                    d, j = 0, pos
                    while j < len(text):
                        if text[j] in "([":
                            d += 1
                        elif text[j] in ")]":
                            if d == 0:
                                return True
                            d -= 1
                        elif text[j] == ";" and d == 0:
                            return False
                        j += 1
                    return True
            else:
                depth -= 1
        elif c in ";{}" and depth == 0:
            return False
        i -= 1
    return False


def operand_problem(text, pos):
    """'braces' or 'ternary' when the co_await's operand (up to the end of its full expression)
    holds one; None otherwise."""
    depth = 0
    j = pos + len("co_await")
    while j < len(text):
        c = text[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            if depth == 0:
                return None
            depth -= 1
        elif c == "{":
            return "braces" if depth > 0 else None
        elif c in ";}," and depth == 0:
            return None
        elif c == "?" and depth > 0:
            return "ternary"
        j += 1
    return None


def check_file(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = strip(f.read())
    found = []
    for m in re.finditer(r"\bco_await\b", text):
        line = text.count("\n", 0, m.start()) + 1
        if in_condition(text, m.start()):
            found.append((line, "condition"))
        problem = operand_problem(text, m.start())
        if problem:
            found.append((line, problem))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    files, problems = 0, 0
    for top in ROOTS:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith((".cpp", ".hpp")) or name == "gcc12_shapes.cpp":
                    continue
                path = os.path.join(dirpath, name)
                files += 1
                for line, what in check_file(path):
                    problems += 1
                    print(f"{os.path.relpath(path, root)}:{line}: {what}: a shape GCC 12 miscompiles")
    status = "SUCCESS" if problems == 0 else "FAILURE"
    print(f"[doctest] test cases: {files} | {files - min(files, problems)} passed | {problems} failed |")
    print(f"[doctest] Status: {status}!")
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
