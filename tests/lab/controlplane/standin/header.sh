#!/bin/sh
# edgefleet LAB STAND-IN (@FLAVOR@ @VERSION@): NOT K3s/K0s. A real kube-apiserver on kine/etcd built from
# Go modules, no kubelet/containerd/pods. Test-only (tests/lab/controlplane). Like the real k3s binary, this
# file carries its tools: a shell header plus a tar.gz payload, extracted once into a data dir keyed by hash.
set -eu
FLAVOR='@FLAVOR@'
VERSION='@VERSION@'
# TEST-ONLY fault switch, set by bundle.sh for the lab's deliberately broken version (empty: none).
FAULT='@FAULT@'
HASH='@HASH@'
SKIP=@SKIP@
case "$FLAVOR" in
  k3s) DATA="${K3S_DATA_DIR:-/var/lib/rancher/k3s}/data/$HASH" ;;
  *) DATA="${K0S_DATA_DIR:-/var/lib/k0s}/bin/$HASH" ;;
esac
if [ ! -f "$DATA/.extracted" ]; then
  parent=$(dirname "$DATA")
  mkdir -p "$parent"
  tmp=$(mktemp -d "$parent/.extract.XXXXXX")
  tail -n "+$SKIP" "$0" | tar -xzf - -C "$tmp"
  touch "$tmp/.extracted"
  if ! mv -T "$tmp" "$DATA" 2>/dev/null; then rm -rf "$tmp"; fi
fi
EDGEFLEET_STANDIN_BIN="$DATA/bin" EDGEFLEET_STANDIN_VERSION="$VERSION" EDGEFLEET_STANDIN_FAULT="$FAULT" PYTHONPATH="$DATA/lib" \
  exec python3 -m edgefleet_standin "$FLAVOR" "$0" "$@"
exit 1
