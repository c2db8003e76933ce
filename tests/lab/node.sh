#!/usr/bin/env bash
# Low-level node container commands, shared by make lab-up and the Molecule
# create/destroy playbooks (extensions/molecule/resources/).
#   node.sh prepare                         bootstrap host, build/reuse image, key, network; prints the image
#   node.sh run NAME HOSTNAME IP KIND [SCENARIO]   start (or keep) one node container, wait for ssh
#   node.sh rm NAME...                      remove node containers that carry the lab label
#   node.sh rm-scenario SCENARIO            remove every container of a Molecule scenario
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cmd=${1:-}
shift || true
case $cmd in
  prepare)
    "$LAB_DIR/bootstrap.sh"
    image=$("$LAB_DIR/image/build.sh")
    lab_lock
    lab_ensure_key
    lab_ensure_network
    echo "$image" ;;
  run)
    (( $# >= 4 )) || lab_die "usage: node.sh run NAME HOSTNAME IP KIND [SCENARIO]"
    lab_run_node "$@" ;;
  rm)
    for name in "$@"; do
      if [[ $(podman inspect --format '{{index .Config.Labels "edgefleet.lab"}}' "$name" 2>/dev/null) == 1 ]]; then
        lab_rm "$name" && lab_log "removed $name"
      fi
    done ;;
  rm-scenario)
    (( $# == 1 )) || lab_die "usage: node.sh rm-scenario SCENARIO"
    mapfile -t names < <(podman ps -a --filter "label=$LAB_LABEL" --filter "label=edgefleet.lab.scenario=$1" --format '{{.Names}}')
    if (( ${#names[@]} )); then
      lab_rm "${names[@]}"
      lab_log "removed ${names[*]}"
    fi ;;
  *) lab_die "usage: node.sh prepare | run NAME HOSTNAME IP KIND [SCENARIO] | rm NAME... | rm-scenario SCENARIO" ;;
esac
