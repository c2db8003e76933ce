#!/usr/bin/env bash
# Lab acceptance checks of the K3s stand-in (issue 4, items 2-5) on podman lab nodes of its own
# (scenario "controlplane", containers edgefleet-cp1..4 at 10.231.0.171-174), installed by hand
# from the air-gap bundle with sha256 sums and run by systemd, as the k3s role will do later.
#   2. server on cp1 via systemd: /readyz, kubectl get --raw /version, SQLite grows
#   3. agent with the right token registers its Node; a wrong token -> 401 in its journal, non-zero exit
#   4. unknown config key -> `k3s server` exits non-zero naming it; broken audit policy rejected
#   5. 3 servers with embedded etcd: quorum of 3, survives stopping one
#   +  the K0s stand-in on cp4: controller (kine) under systemd, a manifest stack, a worker joining with a token
# The stand-in is NOT K3s: a real kube-apiserver on kine/etcd, no kubelet/containerd/pods.
# KEEP=1 leaves the nodes running. Prints one line per check; exits non-zero on the first failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$(cd "$HERE/.." && pwd)"
# shellcheck disable=SC1091
. "$HERE/versions.env"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
BUNDLE="$CACHE/bundle/k3s/$EDGEFLEET_LAB_K3S_VERSION"
SCENARIO=controlplane
NAMES=(edgefleet-cp1 edgefleet-cp2 edgefleet-cp3)
HOSTS=(cpnode1 cpnode2 cpnode3)
IPS=(10.231.0.171 10.231.0.172 10.231.0.173)
T0=$SECONDS

say() { printf '[controlplane %4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { say "FAIL: $*"; exit 1; }
on() { local n=$1; shift; podman exec "$n" bash -c "$*"; }
cleanup() {
    if [[ "${KEEP:-0}" != 1 ]]; then "$LAB/node.sh" rm-scenario "$SCENARIO" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

"$HERE/bundle.sh" >/dev/null
[[ -x "$BUNDLE/k3s" ]] || fail "no stand-in bundle at $BUNDLE"
# node.sh prepare takes the lab lock (held for long by full lab runs): skip it when its results are there.
if ! { podman image exists localhost/edgefleet-node:bookworm && podman network exists edgefleet-lab \
        && [[ -f "$CACHE/lab/id_ed25519" ]]; }; then
    "$LAB/node.sh" prepare >/dev/null
fi
for i in 0 1 2; do "$LAB/node.sh" run "${NAMES[$i]}" "${HOSTS[$i]}" "${IPS[$i]}" scenario "$SCENARIO" >/dev/null; done
"$LAB/node.sh" run edgefleet-cp4 cpnode4 10.231.0.174 scenario "$SCENARIO" >/dev/null
say "nodes up: ${NAMES[*]} edgefleet-cp4"

# Install from the bundle like an air-gap install: copy, verify sha256, install, kubectl symlink, unit files.
install_standin() {
    local n=$1
    on "$n" 'rm -rf /tmp/bundle && mkdir -p /tmp/bundle'
    podman cp "$BUNDLE/k3s" "$n:/tmp/bundle/k3s"
    podman cp "$BUNDLE/sha256sum-amd64.txt" "$n:/tmp/bundle/sha256sum-amd64.txt"
    on "$n" 'cd /tmp/bundle && sha256sum -c --quiet sha256sum-amd64.txt && install -m 0755 k3s /usr/local/bin/k3s \
        && ln -sf k3s /usr/local/bin/kubectl && rm -rf /tmp/bundle'
    on "$n" 'cat > /etc/systemd/system/k3s.service <<EOF
[Unit]
Description=edgefleet LAB STAND-IN for k3s server (not K3s)
After=network-online.target
[Service]
Type=exec
ExecStart=/usr/local/bin/k3s server
KillMode=mixed
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
EOF
sed -e "s/k3s server (not/k3s agent (not/" -e "s#k3s server\$#k3s agent#" /etc/systemd/system/k3s.service \
    > /etc/systemd/system/k3s-agent.service
systemctl daemon-reload'
}
wipe() { on "$1" 'systemctl stop k3s k3s-agent 2>/dev/null; rm -rf /etc/rancher /var/lib/rancher/k3s/server /var/lib/rancher/k3s/agent; true'; }
wait_ready() { # node timeout
    local n=$1 t=${2:-240} s=$SECONDS
    until on "$n" 'k3s kubectl get --raw /readyz >/dev/null 2>&1'; do
        (( SECONDS - s < t )) || { on "$n" 'journalctl -u k3s --no-pager | tail -40' || true; fail "$n not ready in ${t}s"; }
        sleep 2
    done
}
server_rss() { # MiB of the k3s unit's process tree
    on "$1" 'p=$(systemctl show -p MainPID --value k3s); ps -e -o pid=,ppid=,rss= | awk -v r="$p" \
        "{pp[\$1]=\$2; rs[\$1]=\$3} END {for (x in pp) {y=x; while (y && y!=r) y=pp[y]; if (y==r) s+=rs[x]}; printf \"%d\", s/1024}"'
}
for n in "${NAMES[@]}"; do install_standin "$n"; done
say "stand-in installed from $BUNDLE (sha256 verified) on ${#NAMES[@]} nodes"

# ---- 2. server on cp1 under systemd, hardening files
on edgefleet-cp1 'mkdir -p /etc/rancher/k3s /var/lib/rancher/k3s/server && cat > /var/lib/rancher/k3s/server/audit.yaml <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Metadata
EOF
cat > /etc/rancher/k3s/config.yaml <<EOF
write-kubeconfig-mode: "0600"
secrets-encryption: true
tls-san: [cp.lab.example]
kube-apiserver-arg:
  - audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml
  - audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log
EOF
systemctl enable --now k3s >/dev/null 2>&1'
wait_ready edgefleet-cp1
say "2: k3s stand-in (systemd) on cpnode1 serves /readyz"
ver=$(on edgefleet-cp1 'kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /version')
grep -q "\"gitVersion\": \"$EDGEFLEET_CP_K8S_VERSION\"" <<<"$ver" || fail "/version: $ver"
say "2: kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /version -> $EDGEFLEET_CP_K8S_VERSION"
mode=$(on edgefleet-cp1 'stat -c %a /etc/rancher/k3s/k3s.yaml /var/lib/rancher/k3s/server/token /var/lib/rancher/k3s/server/node-token | sort -u')
[[ "$mode" == 600 ]] || fail "kubeconfig/token modes: $mode"
on edgefleet-cp1 'grep -qE "^K10[0-9a-f]{64}::server:[0-9a-f]{32}$" /var/lib/rancher/k3s/server/node-token' || fail "node-token format"
db=/var/lib/rancher/k3s/server/db/state.db
before=$(on edgefleet-cp1 "test -f $db && cat $db $db-wal 2>/dev/null | wc -c")
on edgefleet-cp1 'for i in $(seq 1 80); do printf "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: grow-$i, namespace: default}\ndata: {k: \"%065536d\"}\n---\n" 0; done \
    | kubectl apply --server-side -f - >/dev/null'
after=$(on edgefleet-cp1 "cat $db $db-wal 2>/dev/null | wc -c")
(( after > before )) || fail "SQLite did not grow ($before -> $after)"
say "2: SQLite at $db grew $before -> $after bytes after 80 ConfigMaps of 64 KiB"
on edgefleet-cp1 'kubectl create secret generic canary --from-literal=v=plain-canary >/dev/null'
on edgefleet-cp1 "python3 - <<'EOF'
import sqlite3
v = sqlite3.connect('file:$db?mode=ro', uri=True).execute(
    \"SELECT value FROM kine WHERE name='/registry/secrets/default/canary' ORDER BY id DESC LIMIT 1\").fetchone()[0]
assert bytes(v).startswith(b'k8s:enc:aescbc:v1:'), bytes(v)[:40]
EOF" || fail "secret not encrypted at rest"
on edgefleet-cp1 'grep -q "\"level\":\"Metadata\"" /var/lib/rancher/k3s/server/logs/audit.log' || fail "no audit log"
on edgefleet-cp1 'journalctl -u k3s --no-pager | grep -q "edgefleet LAB STAND-IN"' || fail "no stand-in banner in the journal"
say "2: secrets encrypted at rest (aescbc), audit log written, banner in the journal; server RSS $(server_rss edgefleet-cp1) MiB"

# ---- 3. agents: right token registers its Node; wrong token -> 401
token=$(on edgefleet-cp1 'cat /var/lib/rancher/k3s/server/node-token')
on edgefleet-cp2 "mkdir -p /etc/rancher/k3s && umask 077 && printf '%s\n' '$token' > /etc/rancher/k3s/token && cat > /etc/rancher/k3s/config.yaml <<EOF
server: https://${IPS[0]}:6443
token-file: /etc/rancher/k3s/token
node-label: [edgefleet.io/site=lab-k3s, edgefleet.io/channel=stable]
EOF
systemctl start k3s-agent"
s=$SECONDS
until on edgefleet-cp1 'kubectl get node cpnode2 -o jsonpath="{.metadata.labels.edgefleet\.io/site}"' 2>/dev/null | grep -q lab-k3s; do
    (( SECONDS - s < 90 )) || { on edgefleet-cp2 'journalctl -u k3s-agent --no-pager | tail -20'; fail "cpnode2 not registered"; }
    sleep 2
done
say "3: agent cpnode2 (right token) registered its Node with labels edgefleet.io/site=lab-k3s, edgefleet.io/channel=stable"
bad="${token%:*}:0000000000000000wrongwrongwrong0"
on edgefleet-cp3 "mkdir -p /etc/rancher/k3s && umask 077 && printf '%s\n' '$bad' > /etc/rancher/k3s/token && cat > /etc/rancher/k3s/config.yaml <<EOF
server: https://${IPS[0]}:6443
token-file: /etc/rancher/k3s/token
EOF
systemctl start k3s-agent"
s=$SECONDS
until on edgefleet-cp3 'journalctl -u k3s-agent --no-pager | grep -q "401 Unauthorized"'; do
    (( SECONDS - s < 60 )) || fail "no 401 in the cpnode3 agent journal"
    sleep 2
done
on edgefleet-cp3 'journalctl -u k3s-agent --no-pager | grep -E "status=1/FAILURE|code=exited" | head -1 | grep -q .' \
    || fail "the wrong-token agent did not exit non-zero"
on edgefleet-cp1 'kubectl get node cpnode3' >/dev/null 2>&1 && fail "cpnode3 registered with a wrong token"
say "3: agent cpnode3 (wrong token): $(on edgefleet-cp3 'journalctl -u k3s-agent --no-pager -o cat | grep -m1 "401 Unauthorized"' | cut -c1-110)"
on edgefleet-cp3 'systemctl stop k3s-agent; systemctl reset-failed k3s-agent 2>/dev/null; true'

# ---- 4. unknown key; broken audit policy
wipe edgefleet-cp3
out=$(on edgefleet-cp3 'mkdir -p /etc/rancher/k3s/config.yaml.d && echo "write-kubeconfig-mode: \"0600\"" > /etc/rancher/k3s/config.yaml \
    && echo "kube-apiserver-args: [foo=bar]" > /etc/rancher/k3s/config.yaml.d/50-typo.yaml && k3s server 2>&1; echo "rc=$?"')
grep -q 'unknown key "kube-apiserver-args"' <<<"$out" && ! grep -q 'rc=0' <<<"$out" || fail "unknown key accepted: $out"
say "4: unknown key -> $(grep -m1 'unknown key' <<<"$out" | sed 's/^ *//') ($(grep -o 'rc=[0-9]*' <<<"$out"))"
out=$(on edgefleet-cp3 'rm -rf /etc/rancher/k3s/config.yaml.d && mkdir -p /var/lib/rancher/k3s/server && cat > /var/lib/rancher/k3s/server/audit.yaml <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Everything
EOF
cat > /etc/rancher/k3s/config.yaml <<EOF
kube-apiserver-arg: [audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml]
EOF
timeout 300 k3s server 2>&1; echo "rc=$?"')
grep -q 'rc=1$' <<<"$out" && grep -q 'kube-apiserver exited' <<<"$out" || fail "broken audit policy accepted: $(tail -5 <<<"$out")"
say "4: broken audit policy rejected by kube-apiserver: $(grep -m1 -i 'Everything' <<<"$out" | cut -c1-150)"

# ---- 5. HA: 3 servers, embedded etcd
for n in "${NAMES[@]}"; do wipe "$n"; done
on edgefleet-cp1 'systemctl disable k3s >/dev/null 2>&1; mkdir -p /etc/rancher/k3s && umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n" > /etc/rancher/k3s/token'
secret=$(on edgefleet-cp1 'cat /etc/rancher/k3s/token')
for i in 0 1 2; do
    join=""; [[ $i -gt 0 ]] && join="server: https://${IPS[0]}:6443"
    init="cluster-init: true"; [[ $i -gt 0 ]] && init=""
    on "${NAMES[$i]}" "mkdir -p /etc/rancher/k3s && umask 077 && printf '%s\n' '$secret' > /etc/rancher/k3s/token && cat > /etc/rancher/k3s/config.yaml <<EOF
token-file: /etc/rancher/k3s/token
$init
$join
EOF
systemctl start k3s"
    wait_ready "${NAMES[$i]}" 300
    say "5: server ${HOSTS[$i]} ready (${init:-joined ${IPS[0]}})"
done
members=$(on edgefleet-cp1 'd=$(ls -d /var/lib/rancher/k3s/data/*/bin | head -1); t=/var/lib/rancher/k3s/server/tls/etcd;
    $d/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=$t/etcd-ca.crt --cert=$t/etcd-client.crt --key=$t/etcd-client.key member list -w simple')
say "5: etcd members: $(grep -c started <<<"$members") started"
[[ $(grep -c ', started,' <<<"$members") == 3 ]] || fail "etcd quorum is not 3: $members"
health() { on "$1" 'd=$(ls -d /var/lib/rancher/k3s/data/*/bin | head -1); t=/var/lib/rancher/k3s/server/tls/etcd;
    $d/etcdctl --endpoints='"https://${IPS[0]}:2379,https://${IPS[1]}:2379,https://${IPS[2]}:2379"' --cacert=$t/etcd-ca.crt \
      --cert=$t/etcd-client.crt --key=$t/etcd-client.key --command-timeout=5s endpoint health 2>&1 | grep -c "is healthy"' || true; }
say "5: etcd endpoints healthy: $(health edgefleet-cp2)/3; servers' RSS MiB: $(server_rss edgefleet-cp1) $(server_rss edgefleet-cp2) $(server_rss edgefleet-cp3)"
on edgefleet-cp2 'k3s etcd-snapshot save --name lab >/dev/null && ls /var/lib/rancher/k3s/server/db/snapshots | grep -q "^lab-cpnode2-"' || fail "etcd-snapshot save"
say "5: k3s etcd-snapshot save on cpnode2 wrote $(on edgefleet-cp2 'ls /var/lib/rancher/k3s/server/db/snapshots')"
on edgefleet-cp1 'systemctl stop k3s'
say "5: stopped the server on cpnode1"
on edgefleet-cp2 'kubectl create configmap after-stop --from-literal=k=v >/dev/null' || fail "writes fail with one server down"
on edgefleet-cp3 'kubectl get configmap after-stop >/dev/null' || fail "cpnode3 does not see the write"
say "5: with cpnode1 stopped: write on cpnode2, read on cpnode3 OK; etcd healthy $(health edgefleet-cp2)/3"
on edgefleet-cp1 'systemctl start k3s'
wait_ready edgefleet-cp1 300
on edgefleet-cp1 'kubectl get configmap after-stop >/dev/null' || fail "cpnode1 did not catch up after restart"
say "5: cpnode1 restarted, rejoined and sees the write; etcd healthy $(health edgefleet-cp1)/3"

# ---- K0s stand-in on cp4: controller with kine via systemd, a manifest stack, a worker with a join token
K0S_BUNDLE="$CACHE/bundle/k0s/$EDGEFLEET_LAB_K0S_VERSION"
K0S_FILE="k0s-$EDGEFLEET_LAB_K0S_VERSION-amd64"
on edgefleet-cp4 'rm -rf /tmp/bundle && mkdir -p /tmp/bundle'
podman cp "$K0S_BUNDLE/$K0S_FILE" "edgefleet-cp4:/tmp/bundle/$K0S_FILE"
podman cp "$K0S_BUNDLE/sha256sum-amd64.txt" edgefleet-cp4:/tmp/bundle/sha256sum-amd64.txt
on edgefleet-cp4 "cd /tmp/bundle && sha256sum -c --quiet sha256sum-amd64.txt && install -m 0755 $K0S_FILE /usr/local/bin/k0s"
on edgefleet-cp4 'mkdir -p /etc/k0s /var/lib/k0s/manifests/edgefleet
printf "%s\n" "apiVersion: k0s.k0sproject.io/v1beta1" "kind: ClusterConfig" "spec:" \
    "  api: {sans: [k0s.lab.example]}" "  storage: {type: kine}" > /etc/k0s/k0s.yaml
printf "%s\n" "apiVersion: v1" "kind: Namespace" "metadata: {name: k0s-stack}" > /var/lib/k0s/manifests/edgefleet/ns.yaml
unit() { printf "%s\n" "[Unit]" "Description=edgefleet LAB STAND-IN for k0s $1 (not K0s)" "[Service]" "Type=exec" \
    "ExecStart=/usr/local/bin/k0s $1 $2" "KillMode=mixed" "Restart=always" "RestartSec=5" > /etc/systemd/system/k0s$1.service; }
unit controller "--config /etc/k0s/k0s.yaml"
unit worker "--token-file /etc/k0s/worker-token --labels edgefleet.io/site=lab-k0s"
systemctl daemon-reload && systemctl start k0scontroller'
s=$SECONDS
until on edgefleet-cp4 'k0s status >/dev/null 2>&1 && k0s kubectl get --raw /readyz >/dev/null 2>&1'; do
    (( SECONDS - s < 240 )) || { on edgefleet-cp4 'journalctl -u k0scontroller --no-pager | tail -20'; fail "k0s controller not ready"; }
    sleep 2
done
on edgefleet-cp4 'test -f /var/lib/k0s/db/state.db' || fail "no kine SQLite at /var/lib/k0s/db/state.db"
s=$SECONDS
until on edgefleet-cp4 'k0s kubectl get ns k0s-stack >/dev/null 2>&1'; do
    (( SECONDS - s < 30 )) || fail "the k0s manifest stack was not applied"
    sleep 1
done
say "k0s: controller (systemd, kine at /var/lib/k0s/db/state.db) ready, manifest stack applied; $(on edgefleet-cp4 'k0s status 2>/dev/null | head -3 | paste -sd " "')"
on edgefleet-cp4 'umask 077 && k0s token create --role=worker 2>/dev/null > /etc/k0s/worker-token && systemctl start k0sworker'
s=$SECONDS
until on edgefleet-cp4 'k0s kubectl get node cpnode4 -o jsonpath="{.metadata.labels.edgefleet\.io/site}" 2>/dev/null' | grep -q lab-k0s; do
    (( SECONDS - s < 60 )) || { on edgefleet-cp4 'journalctl -u k0sworker --no-pager | tail -20'; fail "k0s worker did not register"; }
    sleep 2
done
say "k0s: worker joined with a k0s token create token and registered Node cpnode4 (edgefleet.io/site=lab-k0s)"
say "ALL CHECKS PASSED"
