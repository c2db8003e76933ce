# shellcheck shell=bash
# Shared names and helpers for the lab's dm-crypt VM (sourced, not executed).
# The VM is a qemu guest under TCG (the host has no device-mapper), with a
# software TPM 2.0 from swtpm. Everything it creates lives under $VM_CACHE;
# cleanup touches only the pids recorded there.

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$VM_DIR/../../.." && pwd)"
EDGEFLEET_CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
VM_CACHE="$EDGEFLEET_CACHE/vm"
# A second VM beside the lab's (the Secure Boot test) sets its own VM_RUN, VM_NAME, VM_SSH_PORT and
# VM_INVENTORY; the defaults are the lab's.
VM_RUN="${VM_RUN:-$VM_CACHE/run}"
VM_NAME="${VM_NAME:-edgefleet-vm}"
VM_SSH_PORT="${VM_SSH_PORT:-2222}"
VM_USER="edge"
VM_KEY="$EDGEFLEET_CACHE/lab/id_ed25519"
VM_INVENTORY="${VM_INVENTORY:-$REPO_ROOT/inventories/lab/generated/vm.yml}"
VM_PACKAGES=(qemu-system-x86 qemu-utils swtpm swtpm-tools mmdebstrap openssh-client e2fsprogs
  ovmf shim-signed grub-efi-amd64-signed mtools dosfstools fdisk)

vm_log() { printf '[lab-vm] %s\n' "$*" >&2; }
vm_die() { printf '[lab-vm] ERROR: %s\n' "$*" >&2; exit 1; }

VM_SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ConnectTimeout=5 -p "$VM_SSH_PORT" -i "$VM_KEY")

vm_ssh() { ssh "${VM_SSH_OPTS[@]}" "$VM_USER@127.0.0.1" "$@"; }

vm_ensure_packages() {
  local missing=() p
  for p in "${VM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if (( ${#missing[@]} )); then
    vm_log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The same key as the podman node lab (created here if that lab has not run).
vm_ensure_key() {
  mkdir -p "$(dirname "$VM_KEY")"
  chmod 0700 "$(dirname "$VM_KEY")"
  (
    flock 9
    [[ -f "$VM_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C 'edgefleet-lab' -f "$VM_KEY"
  ) 9>"$(dirname "$VM_KEY")/.keygen.lock"
  chmod 0600 "$VM_KEY"
}

# True when the pid in file $1 is alive and its command line contains $2.
vm_pid_alive() {
  local pidfile=$1 want=$2 pid
  [[ -s "$pidfile" ]] || return 1
  pid=$(<"$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$want"
}

vm_wait_ssh() {
  local timeout=${1:-180} start=$SECONDS
  until vm_ssh true 2>/dev/null; do
    (( SECONDS - start < timeout )) || return 1
    vm_pid_alive "$VM_RUN/qemu.pid" "$VM_RUN/" || return 1
    sleep 2
  done
}
