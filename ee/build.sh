#!/usr/bin/env bash
# make ee: the execution environment image (execution-environment.yml, docs/awx.md), built with podman.
#   1. the base image, made locally: tests/lab/image/build.sh's image + ee/base/Containerfile
#      -> localhost/edgefleet-ee-base:<key of both>;
#   2. build/ee/: the collection tarball and its dependency collections (copied from the venv's ansible
#      package: no Galaxy server is reachable here);
#   3. ansible-builder create -> $CACHE/ee/context-<key>, podman build -> localhost/edgefleet-ee:<key>,
#      also tagged :latest. The key hashes every input (base key, EE files, the collection's FILES.json
#      checksums, the dependency collections' versions), so an unchanged tree reuses the image in seconds.
# Prints the image name on stdout. Needs the venv on PATH (the Makefile sets it).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
log() { printf '[ee] %s\n' "$*" >&2; }
podman() { command podman "$@" 9>&-; }

lab_image=$(tests/lab/image/build.sh 2>/dev/null | tail -n1)
[[ -n $lab_image ]] || { log "tests/lab/image/build.sh gave no image"; exit 1; }
base_ctx="$CACHE/ee/base-context"
rm -rf "$base_ctx" && mkdir -p "$base_ctx/ca-certificates"
cp ee/base/Containerfile "$base_ctx/"
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$base_ctx/ca-certificates/" \; 2>/dev/null || true
base_key=$({ echo "$lab_image"; cd "$base_ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-12)
base="localhost/edgefleet-ee-base:$base_key"
if ! podman image exists "$base"; then
  log "building the base image $base from $lab_image"
  podman build -q --build-arg "LAB_IMAGE=$lab_image" -t "$base" -f "$base_ctx/Containerfile" "$base_ctx" >/dev/null
fi

stage=build/ee
rm -rf "$stage" && mkdir -p "$stage/collections" "$stage/deps"
ansible-galaxy collection build --force --output-path "$stage" . >/dev/null
mv "$stage"/edgefleet-k8s-*.tar.gz "$stage/collections/edgefleet-k8s.tar.gz"
# The dependencies galaxy.yml names, at the versions the venv's ansible package ships.
site=$(python -c 'import ansible_collections,os;print(os.path.dirname(ansible_collections.__path__[0] if hasattr(ansible_collections,"__path__") else ansible_collections.__file__))')/ansible_collections
deps=$(python -c 'import yaml;print(" ".join(yaml.safe_load(open("galaxy.yml"))["dependencies"]))')
versions=""
for dep in $deps; do
  ns=${dep%%.*} name=${dep#*.}
  [[ -d $site/$ns/$name ]] || { log "dependency $dep is not in $site"; exit 1; }
  mkdir -p "$stage/deps/$ns"
  cp -a "$site/$ns/$name" "$stage/deps/$ns/$name"
  find "$stage/deps/$ns/$name" -name __pycache__ -prune -exec rm -rf {} +
  versions+="$dep=$(python -c 'import json,sys;print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$site/$ns/$name/MANIFEST.json") "
done
files=$(tar -xzOf "$stage/collections/edgefleet-k8s.tar.gz" FILES.json | sha256sum | cut -c1-16)
key=$({ echo "$base_key $files $versions"; cat execution-environment.yml ee/requirements.txt ee/bindep.txt; } | sha256sum | cut -c1-12)
image="localhost/edgefleet-ee:$key"
if podman image exists "$image"; then
  log "image $image is cached"
else
  ctx="$CACHE/ee/context-$key"
  rm -rf "$ctx"
  ansible-builder create -f execution-environment.yml -c "$ctx" --output-filename Containerfile >/dev/null
  log "building $image (base $base; $versions)"
  podman build --build-arg "EE_BASE_IMAGE=$base" -t "$image" -f "$ctx/Containerfile" "$ctx" >"$CACHE/ee/build-$key.log" 2>&1 \
    || { tail -40 "$CACHE/ee/build-$key.log" >&2; exit 1; }
  rm -rf "$ctx"
fi
podman tag "$image" localhost/edgefleet-ee:latest
log "$image: $(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
echo "$image"
