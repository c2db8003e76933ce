# shellcheck shell=bash
# Shared names and helpers for the podman node lab (sourced, not executed).
# Every resource the lab creates carries the label below and one of these
# names; cleanup touches nothing else.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LAB_DIR/../.." && pwd)"
EDGEFLEET_CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
LAB_CACHE="$EDGEFLEET_CACHE/lab"
LAB_LABEL="edgefleet.lab=1"
LAB_NETWORK="${LAB_NETWORK:-edgefleet-lab}"
LAB_SUBNET="10.231.0.0/24"
LAB_GATEWAY="10.231.0.1"
LAB_NODE_PREFIX="edgefleet-node"
LAB_IMAGE_REPO="localhost/edgefleet-node"
LAB_KEY="$LAB_CACHE/id_ed25519"
LAB_USER="edge"
LAB_INVENTORY_DIR="$REPO_ROOT/inventories/lab/generated"

lab_log() { printf '[lab] %s\n' "$*" >&2; }
lab_die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# Install the Debian packages named that are missing; apt is not touched when none is.
lab_ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  (( ${#missing[@]} )) || return 0
  lab_log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Other make targets may run apt at the same time: wait for the lock.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The lab's ssh options: the nodes are recreated often, so host keys are not
# pinned; nothing here leaves the lab network.
LAB_SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ConnectTimeout=3 -i "$LAB_KEY")

lab_ensure_key() {
  mkdir -p "$LAB_CACHE"
  chmod 0700 "$LAB_CACHE"
  if [[ ! -f "$LAB_KEY" ]]; then
    lab_log "creating the lab ssh key $LAB_KEY"
    ssh-keygen -q -t ed25519 -N '' -C 'edgefleet-lab' -f "$LAB_KEY"
  fi
  chmod 0600 "$LAB_KEY"
}

lab_ensure_network() {
  if ! podman network exists "$LAB_NETWORK"; then
    lab_log "creating network $LAB_NETWORK ($LAB_SUBNET, internal, no DNS)"
    podman network create --internal --disable-dns --subnet "$LAB_SUBNET" \
      --gateway "$LAB_GATEWAY" --label "$LAB_LABEL" "$LAB_NETWORK" >/dev/null
  fi
}

# Wait until sshd on $1 answers as the lab user (timeout $2 seconds). With a
# container name as $3, give up at once when that container stops.
lab_wait_ssh() {
  local addr=$1 timeout=${2:-60} name=${3:-} start
  start=$SECONDS
  until ssh "${LAB_SSH_OPTS[@]}" "$LAB_USER@$addr" true 2>/dev/null; do
    (( SECONDS - start < timeout )) || return 1
    if [[ -n $name && $(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null) != running ]]; then
      lab_log "$name stopped while booting; its last log lines:"
      podman logs --tail 15 "$name" >&2 2>&1 || true
      return 1
    fi
    sleep 0.5
  done
}

# Serialise lab-up/lab-down/molecule create between engineers and terminals.
# The lock is fd 9; podman must not pass it on to conmon, which outlives us.
podman() { command podman "$@" 9>&-; }
lab_lock() {
  mkdir -p "$LAB_CACHE"
  exec 9>"$LAB_CACHE/lab.lock"
  flock -w 600 9 || lab_die "another lab command holds $LAB_CACHE/lab.lock for 10 min"
}

# Names of the lab's node containers (label and name both match), numerically sorted.
lab_node_containers() {
  podman ps -a --filter "label=$LAB_LABEL" --filter "label=edgefleet.lab.kind=node" --format '{{.Names}}' \
    | grep -E "^${LAB_NODE_PREFIX}[0-9]+$" | sort -V || true
}

# The image make lab-up and Molecule run: the :<suite> tag build.sh last set.
LAB_IMAGE="${LAB_IMAGE:-$LAB_IMAGE_REPO:${LAB_SUITE:-bookworm}}"

# lab_run_node NAME HOSTNAME IP KIND [SCENARIO]: make sure one node container
# runs (create it if absent, start it if stopped) and answers ssh.
lab_run_node() {
  local name=$1 host=$2 ip=$3 kind=$4 scenario=${5:-} state
  local labels=(--label "$LAB_LABEL" --label "edgefleet.lab.kind=$kind")
  [[ -n $scenario ]] && labels+=(--label "edgefleet.lab.scenario=$scenario")
  state=$(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo absent)
  # A node left running by an earlier run can be a husk (its systemd or sshd gone, e.g. after the
  # host ran out of memory): podman still says running. It is the lab's own; replace it.
  if [[ $state == running ]] && ! lab_wait_ssh "$ip" 30; then
    lab_log "$name ($ip) is $state but sshd does not answer; recreating it"
    lab_rm "$name" || lab_die "$name: could not remove it"
    state=absent
  fi
  case $state in
    running) ;;
    absent)
      podman run -d --quiet --name "$name" --hostname "$host" \
        --network "$LAB_NETWORK" --ip "$ip" \
        --systemd=always --privileged "${labels[@]}" \
        -v "$LAB_KEY.pub:/run/edgefleet-lab/authorized_keys:ro" \
        "$LAB_IMAGE" >/dev/null ;;
    *) podman start "$name" >/dev/null ;;
  esac
  lab_wait_ssh "$ip" 120 "$name" || lab_die "$name ($ip): sshd did not answer as $LAB_USER within 120 s"
}

# lab_rm NAME...: remove containers; podman sometimes reports "container state
# improper" when one stops while being killed, so try once more, then check.
lab_rm() {
  (( $# )) || return 0
  podman rm -f -t 5 "$@" >/dev/null 2>&1 || podman rm -f -t 0 "$@" >/dev/null 2>&1 || true
  local n
  for n in "$@"; do
    if podman container exists "$n"; then lab_log "could not remove $n"; return 1; fi
  done
}
