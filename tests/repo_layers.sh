#!/bin/sh
# Fails when files of repo/ call each other in a circle (repo/internal.h
# describes the layers). The call graph comes from the built objects: file
# A calls file B when A's object uses a symbol B's object defines.
# Usage: tests/repo_layers.sh [build dir]   (after `make all`)
set -eu
build=${1:-build}
[ -d "$build/repo" ] || { echo "repo_layers: no $build/repo; run make all first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
find "$build/repo" -name '*.o' | sort | while read -r o; do
	f=${o#"$build"/}
	f=${f%.o}.c
	nm --defined-only "$o" | awk -v f="$f" '$2 ~ /^[TDBRV]$/ {print f, $3}' >>"$tmp/defs"
	nm --undefined-only "$o" | awk -v f="$f" '{print f, $2}' >>"$tmp/uses"
done
awk 'NR == FNR {def[$2] = $1; next} ($2 in def) && def[$2] != $1 {print $1, def[$2]}' \
	"$tmp/defs" "$tmp/uses" | sort -u >"$tmp/edges"
python3 - "$tmp/edges" <<'PY'
import sys
graph = {}
for line in open(sys.argv[1]):
    a, b = line.split()
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())
# depth-first search; a grey node met again closes a circle
state, stack = {}, []
def visit(v):
    state[v] = 1
    stack.append(v)
    for w in sorted(graph[v]):
        if state.get(w) == 1:
            cyc = stack[stack.index(w):] + [w]
            sys.exit("repo_layers: files of repo/ call each other in a circle: " + " -> ".join(cyc))
        if w not in state:
            visit(w)
    stack.pop()
    state[v] = 2
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in state:
        visit(v)
print("repo_layers: %d files of repo/, %d calls between files, no circle" %
      (len(graph), sum(len(s) for s in graph.values())))
PY
