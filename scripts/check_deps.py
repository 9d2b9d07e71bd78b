#!/usr/bin/env python3
"""The dependency rule of docs/architecture.md, checked against the code.

Reads the module table of docs/architecture.md (the block between the markers
"<!-- modules -->" and "<!-- /modules -->": one row per module with the modules it may use and
the public headers it owns), then the sources:

  * every #include in src/, include/lmforge/, bench/ and fuzz/;
  * every reference from one .c file of src/ to a function or variable defined in another
    (calls, and names put in tables or passed as callbacks).

It fails (exit 1, one line per problem) when
  * a module includes or refers to a module its row does not allow (directly);
  * a file includes another module's private header (src/OTHER/...);
  * bench/ or fuzz/ include a private header (they use the public API only);
  * the files of one module refer to each other in a cycle;
  * the table itself has a cycle, a public header has no owner, or a module directory is
    missing from the table;
  * MPI is included outside src/parallel/, or exit() is called outside src/cli/.

  scripts/check_deps.py [--root DIR] [--graph]     (--graph prints the module graph found)
"""
import argparse
import os
import re
import sys

KEYWORDS = {
    "if", "for", "while", "switch", "return", "sizeof", "case", "do", "else", "goto",
    "_Static_assert", "_Alignas", "_Alignof", "__attribute__", "typeof", "__typeof__",
    "defined", "_Pragma", "__builtin_mul_overflow", "__builtin_add_overflow",
}


def strip_code(text):
    """Comments and string/char literals removed (newlines kept, so line numbers stay)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            out.append("\n" * text.count("\n", i, j))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_preprocessor(text):
    """Preprocessor lines blanked (continuations included)."""
    lines = text.split("\n")
    out, cont = [], False
    for ln in lines:
        is_pp = cont or ln.lstrip().startswith("#")
        cont = is_pp and ln.endswith("\\")
        out.append("" if is_pp else ln)
    return "\n".join(out)


IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def top_level_definitions(code):
    """(name, is_static, kind) for functions and variables defined at file scope."""
    defs = []
    depth = 0
    start = 0      # start of the current top-level statement
    in_func = False
    paren = 0
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c == "(":
            paren += 1
        elif c == ")":
            paren -= 1
        elif c == "{":
            if depth == 0:
                head = code[start:i]
                m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\([^;{}]*\)\s*(__attribute__\s*\(\(.*?\)\)\s*)?$",
                              head, re.S)
                if m and paren == 0 and "=" not in head.split("(")[0] and \
                        not re.match(r"\s*(typedef|struct|union|enum)\b", head):
                    defs.append((m.group(1), bool(re.search(r"\bstatic\b", head)), "function"))
                    in_func = True
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and in_func:
                in_func = False
                start = i + 1
        elif c == ";" and depth == 0 and paren == 0:
            stmt = code[start:i]
            start = i + 1
            s = stmt.strip()
            if s and not re.match(r"(typedef|extern)\b", s) and not re.match(r"(struct|union|enum)\s+\w+\s*(\{.*\})?\s*$", s, re.S):
                # a variable definition: "type name [= ...]" or "type name[...]"; not a prototype
                left = re.sub(r"\{.*\}", "", s.split("=")[0], flags=re.S)
                if "(" not in left or re.search(r"\(\s*\*", left):
                    names = IDENT.findall(re.sub(r"\[.*?\]", "", left))
                    if names and names[-1] not in ("struct", "enum", "union"):
                        defs.append((names[-1], bool(re.search(r"\bstatic\b", s)), "variable"))
        i += 1
    return defs


def references(code):
    return set(IDENT.findall(code)) - KEYWORDS


def parse_table(doc_path):
    text = open(doc_path, encoding="utf-8").read()
    m = re.search(r"<!-- modules -->(.*?)<!-- /modules -->", text, re.S)
    if not m:
        sys.exit(f"{doc_path}: no module table between <!-- modules --> and <!-- /modules -->")
    allowed, headers, order = {}, {}, []
    for line in m.group(1).splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        mod = cells[0].strip("`").rstrip("/")
        mod = mod[len("src/"):] if mod.startswith("src/") else mod
        uses = re.findall(r"`([a-z_]+)`", cells[1])
        owns = re.findall(r"`([a-z_0-9]+\.h)`", cells[2])
        allowed[mod] = set(uses)
        order.append(mod)
        for h in owns:
            headers[h] = mod
    return allowed, headers, order


def find_cycle(graph):
    """A cycle as a list of nodes, or None."""
    color, stack = {}, []

    def visit(u):
        color[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if color.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if color.get(v) is None:
                c = visit(v)
                if c:
                    return c
        stack.pop()
        color[u] = 2
        return None

    for u in sorted(graph):
        if color.get(u) is None:
            c = visit(u)
            if c:
                return c
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--graph", action="store_true")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    allowed, headers, order = parse_table(os.path.join(root, "docs/architecture.md"))
    problems = []

    def rel(p):
        return os.path.relpath(p, root)

    def module_of(path):
        r = rel(path).split(os.sep)
        if r[0] == "src" and len(r) > 2:
            return r[1]
        if r[0] == "include":
            return headers.get(r[-1])
        return None

    cyc = find_cycle({m: allowed[m] for m in allowed})
    if cyc:
        problems.append("docs/architecture.md: the module table has a cycle: " + " -> ".join(cyc))
    for m, uses in allowed.items():
        for u in uses:
            if u not in allowed:
                problems.append(f"docs/architecture.md: {m} may use '{u}', which is not a module")

    src_files = []
    for base in ("src", "include/lmforge", "bench", "fuzz"):
        for dp, _, fs in os.walk(os.path.join(root, base)):
            for f in sorted(fs):
                if f.endswith((".c", ".h")):
                    src_files.append(os.path.join(dp, f))
    for d in sorted(os.listdir(os.path.join(root, "src"))):
        if os.path.isdir(os.path.join(root, "src", d)) and d not in allowed:
            problems.append(f"src/{d}/: a module missing from the table in docs/architecture.md")
    for h in sorted(os.listdir(os.path.join(root, "include/lmforge"))):
        if h.endswith(".h") and h not in headers:
            problems.append(f"include/lmforge/{h}: no module owns it in docs/architecture.md")

    edges = {}  # (from module, to module) -> first witness

    def edge(m, n, why):
        if m and n and m != n:
            edges.setdefault((m, n), why)

    inc_re = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
    code_of = {}
    for path in src_files:
        raw = open(path, encoding="utf-8", errors="replace").read()
        r = rel(path)
        top = r.split(os.sep)[0]
        mod = module_of(path)
        for mm in inc_re.finditer(raw):
            kind, target = mm.group(1), mm.group(2)
            line = raw.count("\n", 0, mm.start()) + 1
            where = f"{r}:{line}"
            if kind == "<":
                if target == "mpi.h" and top == "src" and mod != "parallel":
                    problems.append(f"{where}: includes <mpi.h>; MPI is called only in src/parallel/")
                continue
            if target.startswith("lmforge/"):
                owner = headers.get(target.split("/")[-1])
                if owner is None:
                    problems.append(f"{where}: includes {target}, which no module owns")
                edge(mod, owner, f"{where} includes {target}")
                continue
            first = target.split("/")[0]
            if "/" not in target:
                continue  # a header beside the file (bench/, fuzz/, tests/)
            if top in ("bench", "fuzz"):
                problems.append(f"{where}: includes the private header {target}; {top}/ uses the public "
                                "API (include/lmforge/) only")
            elif mod is not None and first != mod:
                problems.append(f"{where}: includes {target}, a private header of module '{first}'")
        if r.startswith("src" + os.sep) and path.endswith(".c"):
            code = drop_preprocessor(strip_code(raw))
            code_of[path] = code
            if mod != "cli":
                for mm in re.finditer(r"(?<![A-Za-z0-9_.>])(exit|_exit|_Exit|quick_exit)\s*\(", code):
                    line = code.count("\n", 0, mm.start()) + 1
                    problems.append(f"{r}:{line}: calls {mm.group(1)}(); only src/cli/ decides the exit")

    # references between .c files of src/
    defined_in = {}
    local = {}
    for path, code in code_of.items():
        local[path] = set()
        for name, is_static, _ in top_level_definitions(code):
            local[path].add(name)
            if not is_static:
                defined_in.setdefault(name, path)
    file_graph = {}
    for path, code in code_of.items():
        for name in references(code):
            if name in local[path] or name not in defined_in:
                continue
            other = defined_in[name]
            if other == path:
                continue
            file_graph.setdefault(path, set()).add(other)
            edge(module_of(path), module_of(other), f"{rel(path)} uses {name} ({rel(other)})")

    for (m, n), why in sorted(edges.items()):
        if m not in allowed:
            continue
        if n not in allowed[m]:
            problems.append(f"module {m} -> {n} is not allowed by docs/architecture.md: {why}")

    # cycles between the files of one module
    by_module = {}
    for f, tos in file_graph.items():
        for t in tos:
            if module_of(f) == module_of(t):
                by_module.setdefault(module_of(f), {}).setdefault(f, set()).add(t)
    for mod, g in sorted(by_module.items()):
        cyc = find_cycle(g)
        if cyc:
            problems.append(f"src/{mod}/: files refer to each other in a cycle: " +
                            " -> ".join(os.path.basename(x) for x in cyc))

    if a.graph:
        for m in order:
            uses = sorted({n for (x, n) in edges if x == m}, key=order.index)
            print(f"{m}: {' '.join(uses) if uses else '-'}")
    for p in problems:
        print(p)
    sys.stdout.flush()
    if problems:
        print(f"check_deps: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_deps: {len(code_of)} source files, {len(edges)} module edges, no problem",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
