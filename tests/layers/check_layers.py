#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_layers.py - the tree is the architecture: fail when it is not.

Checks, over the sources and the built object files:
  1. every quoted #include resolves to a header of the including layer or
     to a public header of a layer it may use (LAYERS below); internal/
     headers are reachable only from their own layer; no "../";
  2. the layers' include graph has no cycle;
  3. sqlite3 and libpq are included only under sqldb/, fuse only in fs/fuse;
  4. inside each library, no two object files call each other in a loop
     (from `nm`: which file defines a symbol, which one uses it), so each
     library is a one-way chain of files.
usage: check_layers.py SOURCE_DIR BUILD_DIR
"""
import os, re, subprocess, sys

SRC, BUILD = sys.argv[1], sys.argv[2]
# layer -> (folder, layers it may use)
LAYERS = {
    "sqldb":  ("sqldb", set()),
    "kms":    ("kms", {"sqldb"}),
    "meta":   ("meta", {"sqldb"}),
    "util":   ("fs/util", set()),
    "cipher": ("fs/cipher", {"util", "kms"}),
    "engine": ("fs/engine", {"util", "cipher", "kms"}),
    "store":  ("fs/store", {"util", "cipher", "engine", "kms", "meta"}),
    "ctl":    ("fs/ctl", {"util", "store"}),
    "cli":    ("cli", {"util", "store", "ctl"}),
    "fuse":   ("fs/fuse", {"util", "store", "ctl", "cli"}),
}
# object directories of the library targets whose files must form a chain
# (kms/ and meta/ are not held to it yet: kms.c and meta.c are hubs their
# other files call back into)
LIBS = {"sqldb": "sqldb", "evfs_util": "fs/util", "evfs_cipher": "fs/cipher",
        "evfs_engine": "fs/engine", "evfs_store": "fs/store", "evfs_ctl": "fs/ctl", "evfscli": "cli"}
problems = []


def layer_of(path):
    rel = os.path.relpath(path, SRC)
    best = None
    for name, (folder, _) in LAYERS.items():
        if rel == folder or rel.startswith(folder + "/"):
            if best is None or len(folder) > len(LAYERS[best][0]):
                best = name
    return best


def public_headers(name):
    folder = os.path.join(SRC, LAYERS[name][0])
    return {f for f in os.listdir(folder) if f.endswith(".h")}


PUB = {n: public_headers(n) for n in LAYERS}
edges = {n: set() for n in LAYERS}
for name, (folder, allowed) in LAYERS.items():
    for dirpath, _, files in os.walk(os.path.join(SRC, folder)):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            own = os.path.relpath(path, SRC)
            for lineno, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
                m = re.match(r'\s*#\s*include\s*([<"])([^">]+)[">]', line)
                if not m:
                    continue
                kind, inc = m.groups()
                where = f"{own}:{lineno}"
                if kind == "<":
                    if ("sqlite3" in inc or "libpq" in inc) and name != "sqldb":
                        problems.append(f"{where}: <{inc}>: only sqldb/ links an SQL engine")
                    if inc.startswith("fuse") and name != "fuse":
                        problems.append(f"{where}: <{inc}>: only fs/fuse includes FUSE")
                    continue
                if ".." in inc:
                    problems.append(f'{where}: "{inc}": no relative paths across folders')
                    continue
                if "/" in inc:          # "kms/kms.h", "meta/meta.h"
                    target = layer_of(os.path.join(SRC, inc))
                    if target is None:
                        problems.append(f'{where}: "{inc}" is not in any layer')
                        continue
                    if "internal/" in inc and target != name:
                        problems.append(f'{where}: "{inc}" is internal to {target}')
                    base = os.path.basename(inc)
                    if target != name and base not in PUB[target]:
                        problems.append(f'{where}: "{inc}" is not a public header of {target}')
                else:
                    here = os.path.dirname(path)
                    mine = os.path.join(SRC, folder)
                    if os.path.exists(os.path.join(here, inc)) or \
                       os.path.exists(os.path.join(mine, inc)) or \
                       os.path.exists(os.path.join(mine, "internal", inc)):
                        target = name
                    else:
                        owners = [n for n in LAYERS if inc in PUB[n]]
                        if not owners:
                            problems.append(f'{where}: "{inc}": no layer has such a public header')
                            continue
                        target = owners[0]
                if target != name:
                    edges[name].add(target)
                    if target not in allowed:
                        problems.append(f"{where}: layer {name} may not use layer {target} (\"{inc}\")")


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if not state.get(m):
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if not state.get(n):
            c = visit(n)
            if c:
                return c
    return None


cyc = find_cycle(edges)
if cyc:
    problems.append("include cycle between layers: " + " -> ".join(cyc))

# 4. file-level call graph inside each library, from the object files
checked = 0
for lib, folder in LIBS.items():
    objdir = os.path.join(BUILD, folder, "CMakeFiles", lib + ".dir")
    if not os.path.isdir(objdir):
        problems.append(f"{objdir}: not built (build first)")
        continue
    defs, uses = {}, {}
    for f in sorted(os.listdir(objdir)):
        if not f.endswith(".o"):
            continue
        out = subprocess.run(["nm", os.path.join(objdir, f)], capture_output=True, text=True).stdout
        src = f[:-len(".c.o")] if f.endswith(".c.o") else f
        uses[src] = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDBR":
                defs[parts[2]] = src
            elif len(parts) == 2 and parts[0] == "U":
                uses[src].add(parts[1])
    graph = {s: {defs[u] for u in us if u in defs and defs[u] != s} for s, us in uses.items()}
    checked += len(graph)
    cyc = find_cycle(graph)
    if cyc:
        problems.append(f"{lib}: files call each other in a loop: " + " -> ".join(c + ".c" for c in cyc))

for p in problems:
    print("FAIL:", p)
print(f"layers: {sum(len(e) for e in edges.values())} layer dependencies, {checked} object files checked, "
      f"{len(problems)} problems")
for n in LAYERS:
    print(f"  {n:7} uses {', '.join(sorted(edges[n])) or '-'}")
sys.exit(1 if problems else 0)
