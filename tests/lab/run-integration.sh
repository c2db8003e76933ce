#!/usr/bin/env bash
# The lab part of `make test` (make test-lab):
#   1. bootstrap the host, build or reuse the node image, bring up the lab nodes;
#   2. run every Molecule scenario named in tests/lab/scenarios.txt;
#   3. run the tests/integration tests marked `lab` (pytest -m lab), and check that every
#      integration test carries the marker of some make target;
#   4. ALWAYS tear down what this run brought up (trap EXIT), pass or fail.
# Exits non-zero when any step fails. Lab nodes that were already up
# before the run (someone else's work) are left as they were.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
NODES="${NODES:-4}"
SCENARIOS_FILE="${SCENARIOS_FILE:-$LAB_DIR/scenarios.txt}"
mapfile -t scenarios < <(grep -Ev '^\s*(#|$)' "$SCENARIOS_FILE" | tr -d ' \t')


nodes_before=$(command -v podman >/dev/null && lab_node_containers | tr '\n' ' ' || true)
ran=()

teardown() {
  local rc=$?
  set +e
  lab_log "teardown (exit status so far: $rc)"
  for s in "${ran[@]}"; do
    molecule destroy -s "$s" >/dev/null 2>&1 || lab_log "molecule destroy -s $s failed"
    "$LAB_DIR/node.sh" rm-scenario "$s"
  done
  if [[ -z ${nodes_before// /} ]]; then
    "$LAB_DIR/down.sh"
  else
    lab_log "lab nodes were up before this run ($nodes_before); leaving them"
  fi
  left=$(podman ps -a --filter "label=$LAB_LABEL" --format '{{.Names}}' | tr '\n' ' ')
  [[ -z ${left// /} ]] || lab_log "lab containers still present: $left"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

failures=()
step() {
  local name=$1; shift
  local t0=$SECONDS
  lab_log "=== $name"
  if "$@"; then lab_log "=== $name: passed ($((SECONDS - t0)) s)"
  else lab_log "=== $name: FAILED ($((SECONDS - t0)) s)"; failures+=("$name"); fi
}

step "pytest tests/lab (lab tooling)" python -m pytest -q -p no:cacheprovider tests/lab/test_*.py

# Never shrink a lab someone already has up: keep at least its highest node.
for n in $nodes_before; do
  i=${n#"$LAB_NODE_PREFIX"}
  (( i > NODES )) && NODES=$i
done
NODES=$NODES "$LAB_DIR/up.sh" || exit 1

# The scenarios run LAB_JOBS at a time (default 2): each has its own nodes and addresses (docs/lab.md),
# and one scenario alone leaves most of the CPU idle while it waits on its nodes. Each scenario's
# output is prefixed with its name; a scenario's result is a file in $results, read back in list order.
LAB_JOBS="${LAB_JOBS:-2}"
results=$(mktemp -d)
for s in "${scenarios[@]}"; do
  [[ -f extensions/molecule/$s/molecule.yml ]] || { lab_log "no scenario extensions/molecule/$s"; failures+=("molecule $s (missing)"); continue; }
  ran+=("$s")
done
scenario_test() { molecule test -s "$1" 2>&1 | sed -u "s/^/[$1] /"; }
# In its own bash (xargs): `step` logs it as every other step, and its failures list starts empty there.
run_scenario() {
  step "molecule test -s $1" scenario_test "$1"
  (( ${#failures[@]} )) || echo passed >"$results/$1"
}
export -f step scenario_test run_scenario lab_log
export results
t0=$SECONDS
printf '%s\n' "${ran[@]}" | xargs -r -P "$LAB_JOBS" -I{} bash -o pipefail -c 'run_scenario "$1"' _ {}
for s in "${ran[@]}"; do
  [[ $(cat "$results/$s" 2>/dev/null) == passed ]] || failures+=("molecule test -s $s")
done
rm -rf "$results"
lab_log "=== ${#ran[@]} Molecule scenario(s), $LAB_JOBS at a time: $((SECONDS - t0)) s"

# tests/integration: the tests marked `lab` (pytestmark = pytest.mark.lab). Every other integration
# test carries the marker of the make target that runs it, with its own prerequisites (markers in
# pyproject.toml), so nothing runs twice. A collection error in one file does not stop the others.
# The kube-bench gate is marked lab and kube_bench: make test-kube-bench runs it (it needs kube-bench built), not this.
itest_markers=$(python -c 'import tomllib;print(" or ".join(m.split(":")[0].strip() for m in tomllib.load(open("pyproject.toml","rb"))["tool"]["pytest"]["ini_options"]["markers"]))')
lab_itests() {
  python -m pytest -q -p no:cacheprovider --durations=0 --continue-on-collection-errors -m "lab and not kube_bench" \
    -n "$LAB_JOBS" --dist loadfile -rP tests/integration
  local rc=$?
  (( rc == 5 )) && { lab_log "tests/integration: no test is marked lab"; return 0; }
  return "$rc"
}
step "pytest -m lab tests/integration" lab_itests
# A test without any of those markers would run nowhere: list it and fail.
unmarked_itests() {
  local out
  out=$(python -m pytest -q -p no:cacheprovider --collect-only --continue-on-collection-errors \
    -m "not ($itest_markers)" tests/integration 2>/dev/null | grep -E '^tests/integration/.*::' || true)
  [[ -z $out ]] && return 0
  lab_log "integration tests with none of the markers ($itest_markers), so no make target runs them:"
  printf '%s\n' "$out" >&2
  return 1
}
step "every tests/integration test carries a target marker" unmarked_itests

if (( ${#failures[@]} )); then
  lab_log "FAILED: ${failures[*]}"
  exit 1
fi
lab_log "all lab tests passed (${#scenarios[@]} scenario(s))"
