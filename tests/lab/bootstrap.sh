#!/usr/bin/env bash
# Install what the podman node lab needs (jq: the kube-bench gate copies it into nodes) and apply the two host fixes to
# /etc/containers/containers.conf. Idempotent: apt is only touched when a
# package is missing, and the config is only rewritten when a value differs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

lab_ensure_packages podman runc netavark iptables mmdebstrap openssh-client jq

hard_nofile=$(ulimit -Hn)
[[ $hard_nofile == unlimited ]] && hard_nofile=1048576
python3 "$LAB_DIR/containers_conf.py" /etc/containers/containers.conf \
  "containers.default_ulimits=[\"nofile=${hard_nofile}:${hard_nofile}\", \"nproc=32768:32768\"]" \
  'engine.runtime="runc"' 'network.network_backend="netavark"'

# Each node's systemd takes several inotify instances, and all rootful
# containers share root's limit (128 by default): past about 20 nodes systemd
# units fail and sshd never starts. Raise (never lower) the limits.
sysctl_conf=/etc/sysctl.d/90-edgefleet-lab.conf
for kv in fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=524288; do
  key=${kv%=*} want=${kv#*=}
  have=$(sysctl -n "$key")
  if (( have < want )); then
    sysctl -q -w "$key=$want"
    lab_log "raised $key from $have to $want"
  fi
done
if [[ ! -f $sysctl_conf ]]; then
  printf '# edgefleet lab (tests/lab/bootstrap.sh): room for 50 systemd containers.\nfs.inotify.max_user_instances = 8192\nfs.inotify.max_user_watches = 524288\n' > "$sysctl_conf"
fi
