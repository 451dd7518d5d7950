# shellcheck shell=bash
# jget PATH: print the value at PATH of the JSON document on stdin (the
# output of `evfsctl --json ...`).  Sourced by lib.sh (every e2e script)
# and by tests/bench/bench.sh.  python3 only: jq is not a CI dependency.
#
# PATH is dot-separated; each segment is
#   NAME          a field of an object          jget lineage, jget key.id
#   N             an array index (-1: the last)  jget 0.name
#   *             every element of an array      jget '*.name' (one per line)
#   FIELD=VALUE   the array elements whose FIELD is VALUE
#                                                jget 'items.severity=problem.code'
# A string prints as is, anything else as compact JSON (true, 12, {...}).
#
# A missing field, an index out of range, a segment that does not fit the
# document's shape or input that is not JSON is an error: exit 1 with a
# message (and the start of the input) on stderr, never a guess.  Only * and
# FIELD=VALUE may yield nothing (an empty list).
jget() {
  [ $# = 1 ] || { echo "usage: jget PATH <JSON" >&2; return 2; }
  python3 -c '
import json, re, sys

path, src = sys.argv[1], sys.stdin.read()

def fail(msg):
    snippet = " ".join(src.split())
    snippet = snippet[:300] + ("..." if len(snippet) > 300 else "") if snippet else "(empty)"
    sys.exit(f"jget {path}: {msg}\n  input: {snippet}")

def text(v):
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))

try:
    nodes = [json.loads(src)]
except ValueError as e:
    fail(f"input is not JSON ({e})")
done = []
for seg in path.split(".") if path else []:
    at = ".".join(done) or "(top)"
    out = []
    for n in nodes:
        if seg == "*" or "=" in seg:
            if not isinstance(n, list):
                fail(f"{at} is not an array, cannot apply {seg!r}")
            if seg == "*":
                out.extend(n)
                continue
            k, v = seg.split("=", 1)
            if n and not any(isinstance(e, dict) and k in e for e in n):
                fail(f"no element of {at} has a field {k!r}")
            out.extend(e for e in n if isinstance(e, dict) and k in e and text(e[k]) == v)
        elif isinstance(n, list):
            if not re.fullmatch(r"-?[0-9]+", seg):
                fail(f"{at} is an array: {seg!r} is not an index, * or FIELD=VALUE")
            if not -len(n) <= int(seg) < len(n):
                fail(f"index {seg} out of range: {at} has {len(n)} element(s)")
            out.append(n[int(seg)])
        elif isinstance(n, dict):
            if seg not in n:
                fail(f"no field {seg!r} in {at} (it has: {list(n)})")
            out.append(n[seg])
        else:
            fail(f"{at} is {text(n)}, not an object or array: cannot take {seg!r}")
    nodes = out
    done.append(seg)
for n in nodes:
    print(text(n))
' "$1"
}
