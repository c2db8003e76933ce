#!/usr/bin/env bash
# Build (or reuse) the lab node image without a registry.
#   LAB_DISTRO=debian LAB_SUITE=bookworm tests/lab/image/build.sh
# The image is keyed by a hash of the recipe (this directory, distro, suite,
# architecture). The rootfs tarball is cached under ~/.cache/edgefleet/lab/images/
# and imported as localhost/edgefleet-node:<hash> and :<suite>.
# The mirror is the one this machine's apt sources already use for the suite
# (override with LAB_MIRROR=<url>); no host name lives in the repository.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

LAB_DISTRO="${LAB_DISTRO:-debian}"
LAB_SUITE="${LAB_SUITE:-bookworm}"
LAB_ARCH="${LAB_ARCH:-$(dpkg --print-architecture)}"
IMAGE_DIR="$LAB_DIR/image"
PKG_FILE="$IMAGE_DIR/$LAB_DISTRO.packages"
[[ -f $PKG_FILE ]] || lab_die "no package list $PKG_FILE for LAB_DISTRO=$LAB_DISTRO (have: $(cd "$IMAGE_DIR" && ls -- *.packages | tr '\n' ' '))"

# What makes the image: bump RECIPE_VERSION when the mmdebstrap or import
# options below change; the hook and the package list are hashed as they are.
RECIPE_VERSION=1
recipe_hash() {
  { printf 'recipe=%s\ndistro=%s\nsuite=%s\narch=%s\n' "$RECIPE_VERSION" "$LAB_DISTRO" "$LAB_SUITE" "$LAB_ARCH"
    cat "$IMAGE_DIR/customize.sh" "$PKG_FILE"; } | sha256sum | cut -c1-12
}
HASH=$(recipe_hash)
TAG="$LAB_IMAGE_REPO:$HASH"

if podman image exists "$TAG"; then
  podman tag "$TAG" "$LAB_IMAGE_REPO:$LAB_SUITE"
  lab_log "image $TAG is cached"
  echo "$TAG"
  exit 0
fi

# The first apt source of this machine that serves "$LAB_SUITE" exactly
# (one-line and deb822 formats).
find_mirror() {
  python3 - "$LAB_SUITE" <<'PY'
import glob, sys
suite = sys.argv[1]
files = [f for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
         if f.endswith((".list", ".sources"))]
for path in files:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    if path.endswith(".list"):
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split()
            if parts[:1] != ["deb"]:
                continue
            parts = [p for p in parts[1:] if not p.startswith("[")] if "]" not in line else line.split("]", 1)[1].split()
            if len(parts) >= 2 and parts[1] == suite:
                print(parts[0]); sys.exit(0)
    else:
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.split()
            if fields.get("enabled", ["yes"]) != ["no"] and "deb" in fields.get("types", []) \
                    and suite in fields.get("suites", []) and fields.get("uris"):
                print(fields["uris"][0]); sys.exit(0)
sys.exit(1)
PY
}
MIRROR="${LAB_MIRROR:-$(find_mirror || true)}"
[[ -n $MIRROR ]] || lab_die "no apt source for suite '$LAB_SUITE' in /etc/apt/sources.list*; set LAB_MIRROR=<url>"

mkdir -p "$LAB_CACHE/images"
TARBALL="$LAB_CACHE/images/$LAB_DISTRO-$LAB_SUITE-$LAB_ARCH-$HASH.tar"
if [[ ! -s $TARBALL ]]; then
  mapfile -t pkgs < <(grep -Ev '^\s*(#|$)' "$PKG_FILE")
  include=$(IFS=,; echo "${pkgs[*]}")
  lab_log "building $LAB_DISTRO $LAB_SUITE ($LAB_ARCH) rootfs with mmdebstrap from $MIRROR"
  tmp="$TARBALL.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  mmdebstrap --quiet --variant=apt --architectures="$LAB_ARCH" --format=tar \
    --include="$include" \
    --customize-hook="$IMAGE_DIR/customize.sh \"\$1\"" \
    "$LAB_SUITE" "$tmp" "$MIRROR"
  mv -f "$tmp" "$TARBALL"
  trap - EXIT
fi

lab_log "importing $TARBALL as $TAG"
podman import --quiet \
  --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' \
  --change 'LABEL edgefleet.lab=1' --change "LABEL edgefleet.lab.recipe=$HASH" \
  --message "edgefleet lab node ($LAB_DISTRO $LAB_SUITE, recipe $HASH)" \
  "$TARBALL" "$TAG" >/dev/null
podman tag "$TAG" "$LAB_IMAGE_REPO:$LAB_SUITE"

# Older recipes of this distro/suite/arch: drop their rootfs tarballs, and
# their images (known by the import message) unless a container still uses
# them (podman refuses then).
for old in "$LAB_CACHE/images/$LAB_DISTRO-$LAB_SUITE-$LAB_ARCH-"*.tar; do
  [[ $old == "$TARBALL" || ! -e $old ]] || rm -f "$old"
done
for img in $(podman images --filter "label=edgefleet.lab=1" --format '{{.ID}}' | sort -u); do
  comment=$(podman image inspect --format '{{.Comment}}' "$img")
  [[ $comment == "edgefleet lab node ($LAB_DISTRO $LAB_SUITE, recipe "* && $comment != *"recipe $HASH)" ]] || continue
  podman rmi "$img" >/dev/null 2>&1 && lab_log "removed old lab image $img" || true
done
echo "$TAG"
