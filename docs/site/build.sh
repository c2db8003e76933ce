#!/usr/bin/env bash
# make docs: the documentation site in $1 (default build/docs) -> $1/html/index.html.
#   1. antsibull-docs writes the collection's RST (plugin and role pages from their specs) into $1/src;
#   2. the project's Markdown pages (docs/*.md, docs/roles/*.md) go into $1/src/guides (MyST);
#   3. sphinx-build -W --keep-going renders the HTML; any warning of either tool fails the build.
# Needs the venv on PATH and ANSIBLE_COLLECTIONS_PATH holding edgefleet.k8s (the Makefile sets both).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$repo/build/docs}" && cd "${1:-$repo/build/docs}" && pwd)"
src="$out/src"
rm -rf "$src" "$out/html"
mkdir -p "$src"
chmod 0755 "$src"  # antsibull-docs refuses a destination that others can write
antsibull-docs --config-file "$here/antsibull-docs.cfg" collection --use-current --cleanup everything \
  --dest-dir "$src" edgefleet.k8s >"$out/antsibull-docs.log" 2>&1 || { cat "$out/antsibull-docs.log" >&2; exit 1; }
cp "$here/index.rst" "$here/ansible-refs.rst" "$src/"
mkdir -p "$src/guides/roles"
cp "$repo"/docs/*.md "$repo"/docs/*.json "$src/guides/"
cp "$repo"/docs/roles/*.md "$src/guides/roles/"
sphinx-build -q -b html -c "$here" -W --keep-going "$src" "$out/html" 2>"$out/sphinx.log" || true
warnings=$(cat "$out/antsibull-docs.log" "$out/sphinx.log" | grep -ciE 'warning|error' || true)
if (( warnings )) || [[ ! -f $out/html/index.html ]]; then
  cat "$out/antsibull-docs.log" "$out/sphinx.log" >&2
  echo "docs: $warnings warning(s) or error(s); site not built" >&2
  exit 1
fi
pages=$(find "$out/html" -name '*.html' | wc -l)
echo "docs: $out/html/index.html ($pages pages, 0 warnings)"
