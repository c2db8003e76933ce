#!/usr/bin/env bash
# Stop the lab's dm-crypt VM (idempotent): ends only the qemu and swtpm whose
# pids this lab recorded under ~/.cache/edgefleet/vm/run/, then removes the run
# state and the generated inventory. The cached base image is kept.
set -euo pipefail
source "$(dirname "$0")/vm-lib.sh"

stop_pid() {
  local pidfile=$1 want=$2 pid
  vm_pid_alive "$pidfile" "$want" || return 0
  pid=$(<"$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

stop_pid "$VM_RUN/qemu.pid" "$VM_RUN/"
stop_pid "$VM_RUN/swtpm.pid" "$VM_RUN/"
rm -rf "$VM_RUN"
rm -f "$VM_INVENTORY"
vm_log "down"
