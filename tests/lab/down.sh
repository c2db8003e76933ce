#!/usr/bin/env bash
# make lab-down: remove the lab's node containers and, when nothing else uses
# it, the lab network. Touches only resources with the lab label and name.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v podman >/dev/null || exit 0
lab_lock
mapfile -t nodes < <(lab_node_containers)
if (( ${#nodes[@]} )); then
  lab_log "removing ${#nodes[@]} node container(s)"
  lab_rm "${nodes[@]}"
fi
rm -f "$LAB_INVENTORY_DIR/nodes.yml"
# An empty directory would be an inventory source that parses to nothing, which any_unparsed_is_failed refuses.
rmdir "$LAB_INVENTORY_DIR" 2>/dev/null || true
if podman network exists "$LAB_NETWORK"; then
  users=$(podman ps -a --filter "network=$LAB_NETWORK" --format '{{.Names}}')
  if [[ -z $users ]]; then
    [[ $(podman network inspect --format '{{index .Labels "edgefleet.lab"}}' "$LAB_NETWORK") == 1 ]] \
      && podman network rm "$LAB_NETWORK" >/dev/null && lab_log "removed network $LAB_NETWORK"
  else
    lab_log "keeping network $LAB_NETWORK: still used by $(echo "$users" | tr '\n' ' ')"
  fi
fi
