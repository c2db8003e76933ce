#!/usr/bin/env bash
# Runs on the VM as root (test only). The datastore's rows, through the API and in SQLite itself.
#   rows.sh k3s|k0s create N   N ConfigMaps in namespace edgefleet-rows (once; one apply)
#   rows.sh k3s|k0s count      "<ConfigMaps> <sha256 of their names and data> <kine rows under that prefix>"
set -euo pipefail
dist=$1 cmd=$2
case "$dist" in
  k3s) db=/var/lib/rancher/k3s/server/db/state.db ;;
  k0s) db=/var/lib/k0s/db/state.db ;;
  *) echo "rows.sh: unknown distribution $dist" >&2; exit 2 ;;
esac
kc() { "/usr/local/bin/$dist" kubectl "$@"; }
case "$cmd" in
  create)
    list=$(mktemp)
    trap 'rm -f "$list"' EXIT
    python3 - "$3" >"$list" <<'PY'
import json, os, sys
n = int(sys.argv[1])
items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edgefleet-rows"}}]
items += [{"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": f"row-{i:04d}", "namespace": "edgefleet-rows"},
           "data": {"value": os.urandom(96).hex()}} for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
    # A freshly started kine can answer "database table is locked" for a while (its startup
    # compaction holds SQLite); the same list is applied again until it goes through.
    for attempt in 1 2 3 4 5 6; do
      kc apply -f "$list" >/dev/null && exit 0
      echo "rows.sh: apply attempt $attempt failed; retrying in 5 s" >&2
      sleep 5
    done
    exit 1
    ;;
  count)
    json=""
    for attempt in 1 2 3 4 5 6; do
      json=$(kc get configmaps -n edgefleet-rows -o json) && break
      echo "rows.sh: read attempt $attempt failed; retrying in 5 s" >&2
      sleep 5
    done
    [[ -n "$json" ]] || exit 1
    api=$(printf '%s' "$json" | python3 -c '
import hashlib, json, sys
items = [i for i in json.load(sys.stdin)["items"] if i["metadata"]["name"].startswith("row-")]
h = hashlib.sha256()
for i in sorted(items, key=lambda i: i["metadata"]["name"]):
    h.update((i["metadata"]["name"] + "=" + i["data"]["value"] + "\n").encode())
print(len(items), h.hexdigest())')
    kine=$(sqlite3 -readonly -cmd ".timeout 30000" "$db" "SELECT count(*) FROM kine WHERE name LIKE '/registry/configmaps/edgefleet-rows/row-%'")
    echo "$api $kine"
    ;;
  *) echo "rows.sh: unknown command $cmd" >&2; exit 2 ;;
esac
