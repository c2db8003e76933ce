#!/usr/bin/env bash
# Runs test lanes at once and waits for all of them (used by `make test`).
#   lanes.sh NAME=COMMAND [NAME=COMMAND ...]
# Each lane's output is shown live with a "[NAME] " prefix and kept whole in
# $EDGEFLEET_CACHE/lanes/NAME.log. Exits non-zero if any lane failed, after all
# have ended, and prints each lane's status and time. The lanes must not share
# hosts: the podman lab lane and the VM lane use separate networks and caches.
set -uo pipefail
logs="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}/lanes"
mkdir -p "$logs"
names=() pids=() starts=()
for lane in "$@"; do
  name=${lane%%=*} cmd=${lane#*=}
  : >"$logs/$name.log"
  # Each lane is a process group of its own, so a stop reaches everything it started.
  setsid bash -c 'set -o pipefail; bash -c "$1" 2>&1 | tee "$2" | sed -u "s/^/[$3] /"' _ "$cmd" "$logs/$name.log" "$name" &
  names+=("$name") pids+=($!) starts+=("$SECONDS")
done
# A Ctrl-C or a CI timeout stops every lane; each lane's own traps tear its hosts down.
trap 'for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; wait; exit 130' INT TERM
rc=0 summary=() failed=() running=("${pids[@]}")
# In the order the lanes end, each with its own time.
while (( ${#running[@]} > 0 )); do
  ended=""
  if wait -n -p ended "${running[@]}"; then status=passed; else status=FAILED; rc=1; fi
  [[ -n "$ended" ]] || break
  still=()
  for i in "${!pids[@]}"; do
    if [[ "${pids[$i]}" == "$ended" ]]; then
      summary+=("lane ${names[$i]}: $status after $((SECONDS - starts[i])) s (log $logs/${names[$i]}.log)")
      [[ $status == passed ]] || failed+=("${names[$i]}")
    fi
  done
  for p in "${running[@]}"; do [[ "$p" == "$ended" ]] || still+=("$p"); done
  running=("${still[@]}")
done
# The other lane's output interleaves with a failure and a CI log keeps only its end: repeat the
# end of each failed lane's log last, next to the summary.
# A lane made with -k goes on after a failed target, so its end may show only passes: name the
# failed targets and tests, and the failed Ansible tasks, after its last lines.
pre='^(\[[A-Za-z0-9_.-]+\] )*( *│ ?)?'
for name in "${failed[@]}"; do
  echo "--- the last 40 lines of lane $name ($logs/$name.log):"
  tail -n 40 "$logs/$name.log" | sed "s/^/[$name] /"
  echo "--- what failed in lane $name:"
  # Without colours, and past the prefixes a line may carry: a scenario's "[name] " and Molecule's "  │ " box.
  # An Ansible failure's message goes on over the next lines of the box: two of them come along.
  sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g' "$logs/$name.log" \
    | grep -E -A2 "$pre(make(\[[0-9]+\])?: \*\*\*|(FAILED|ERROR) [A-Za-z0-9_./-]+\.py|[A-Za-z0-9_./-]+\.py::[^ ]+ (FAILED|ERROR)|fatal: |\[ERROR\]: |CRITICAL Ansible |E  |.*failed=[1-9]|.*=== .*: FAILED \()" \
    | head -n 120 | sed "s/^/[$name] /"
done
printf '%s\n' "${summary[@]}"
exit "$rc"
