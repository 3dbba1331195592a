#!/usr/bin/env bash
# Checks that each binary links only what it runs, from `cargo tree -e normal`:
#   - no Lambda function depends on rusqlite (the embedded store is local mode's);
#   - the CLI depends on no aws-sdk-* crate (local mode and the remote client need none);
#   - the domain crate depends on no AWS SDK, no SQLite and no HTTP server or router;
#   - the HTTP edge depends on no AWS SDK and no SQLite; the embedded store on no AWS SDK;
#   - no two modules of a shared crate import each other, directly or through others.
# Each rule is also checked to find what it looks for where it must be (the functions do link
# aws-sdk-dynamodb, the CLI does link rusqlite), so a broken tree query cannot pass silently.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
tree() { cargo tree --offline -q -p "$1" -e normal --prefix none --format '{p}' 2>/dev/null || cargo tree -q -p "$1" -e normal --prefix none --format '{p}'; }

# forbid PACKAGE REGEX WHY
forbid() {
    local hits
    hits=$(tree "$1" | awk '{print $1}' | grep -E "$2" | sort -u || true)
    if [ -n "$hits" ]; then
        echo "FAIL $1 depends on $(echo "$hits" | paste -sd, -): $3"
        failed=1
    else
        echo "ok   $1: no ${2}"
    fi
}

# expect PACKAGE REGEX: the rule's pattern does match this tree (the query works).
expect() {
    local names
    names=$(tree "$1" | awk '{print $1}')
    if ! grep -qE "$2" <<<"$names"; then
        echo "FAIL $1 should depend on $2 (is the dependency query broken?)"
        failed=1
    fi
}

for function in collect aggregate metrics breaker webhooks mail alerts; do
    expect "$function" '^aws-sdk-'
    forbid "$function" '^rusqlite$|^libsqlite3-sys$' "Lambda functions must not build SQLite"
done
expect sondeo-cli '^rusqlite$'
forbid sondeo-cli '^aws-sdk-' "the CLI must not compile the AWS SDKs"
forbid sondeo-domain '^aws-|^rusqlite$|^axum$|^hyper$|^lambda_' "the domain holds no adapter"
forbid sondeo-http '^aws-sdk-|^rusqlite$' "the HTTP edge holds no storage adapter"
forbid sondeo-embedded '^aws-sdk-' "the embedded store needs no AWS SDK"

# Imports run downward inside each shared crate: no two modules import each other, directly or
# through others (`crate::<module>` references between the crate's modules; the crate root only
# declares and re-exports).
if ! python3 - shared/*/src <<'PY'
import pathlib, re, sys

cyclic = False
total = 0
for src in map(pathlib.Path, sys.argv[1:]):
    modules = {p.stem: p for p in src.glob("*.rs") if p.stem not in ("lib", "main")}
    edges = {}
    for name, path in modules.items():
        text = path.read_text()
        # A file's own test module (`foo_tests.rs` included through #[path]) belongs to it.
        refs = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
        edges[name] = {r for r in refs if r in modules and r != name and not name.startswith(r + "_")}
    # Depth-first search for a cycle.
    state = {}
    def visit(node, path):
        global cyclic
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                print(f"FAIL {src.parent.name}: import cycle {' -> '.join(cycle)}")
                cyclic = True
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"
    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    total += sum(map(len, edges.values()))
    print(f"ok   {src.parent.name}: {sum(map(len, edges.values()))} imports between {len(modules)} modules, no cycle" if not cyclic else "", end="\n" if not cyclic else "")
# A crate's modules may all be independent, but not every crate's: then the scan is broken.
if total == 0:
    print("FAIL no imports found between the modules of any shared crate (is the scan broken?)")
    cyclic = True
sys.exit(1 if cyclic else 0)
PY
then
    failed=1
fi

if [ "$failed" -ne 0 ]; then
    echo "check-deps: dependency boundaries broken"
    exit 1
fi
echo "check-deps: every dependency boundary holds"
