#!/usr/bin/env bash
# make lab-up [NODES=n]: bring up n node containers (default 4) on the lab
# network and write inventories/lab/generated/nodes.yml.
# Idempotent: running nodes are kept; nodes numbered above n are removed, so
# the lab always has exactly nodes 1..n afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
NODES="${NODES:-${1:-4}}"
[[ $NODES =~ ^[0-9]+$ ]] && (( NODES >= 1 && NODES <= 50 )) \
  || lab_die "NODES=$NODES: expected a whole number from 1 to 50 (addresses .11-.60 are reserved for lab nodes)"
PARALLEL="${LAB_PARALLEL:-4}"

"$LAB_DIR/bootstrap.sh"
LAB_IMAGE=$("$LAB_DIR/image/build.sh")
lab_lock
lab_ensure_key
lab_ensure_network

# Nodes above NODES go; a node on an older image is recreated.
for name in $(lab_node_containers); do
  i=${name#"$LAB_NODE_PREFIX"}
  image=$(podman inspect --format '{{.ImageName}}' "$name")
  if (( i > NODES )) || [[ $image != "$LAB_IMAGE" ]]; then
    lab_log "removing $name ($( (( i > NODES )) && echo "NODES=$NODES" || echo "image $image is not $LAB_IMAGE"))"
    lab_rm "$name"
  fi
done

start_node() { lab_run_node "$LAB_NODE_PREFIX$1" "node$1" "10.231.0.$((10 + $1))" node; }
export -f podman start_node lab_run_node lab_wait_ssh lab_log lab_die lab_rm
export LAB_NODE_PREFIX LAB_NETWORK LAB_LABEL LAB_KEY LAB_IMAGE LAB_USER
export LAB_SSH_OPTS_STR="${LAB_SSH_OPTS[*]}"

start=$SECONDS
# Bash arrays cannot be exported: rebuild LAB_SSH_OPTS in each child.
seq 1 "$NODES" | xargs -P "$PARALLEL" -I{} bash -c 'read -ra LAB_SSH_OPTS <<<"$LAB_SSH_OPTS_STR"; start_node {}'
lab_log "$NODES node(s) answer ssh ($((SECONDS - start)) s)"

mkdir -p "$LAB_INVENTORY_DIR"
out="$LAB_INVENTORY_DIR/nodes.yml"
{
  echo "---"
  echo "# Written by make lab-up (tests/lab/up.sh); removed by make lab-down. Do not edit."
  echo "lab_nodes:"
  echo "  hosts:"
  for name in $(lab_node_containers); do
    i=${name#"$LAB_NODE_PREFIX"}
    echo "    node$i:"
    echo "      ansible_host: 10.231.0.$((10 + i))"
  done
  echo "  vars:"
  echo "    ansible_connection: ssh"
  echo "    ansible_user: $LAB_USER"
  echo "    ansible_ssh_private_key_file: $LAB_KEY"
  echo "    ansible_become: true"
  echo "    ansible_python_interpreter: /usr/bin/python3"
} > "$out.tmp"
mv -f "$out.tmp" "$out"
lab_log "wrote $out"
