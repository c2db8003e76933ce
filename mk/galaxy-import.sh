#!/usr/bin/env bash
# make galaxy-import: galaxy-importer (what Galaxy runs on an upload) on the built tarball, in a venv of its own
# ($1; it pins its own ansible-lint). Fails on any warning or error but one: ansible-lint's unknown-module for a
# module of a dependency collection (galaxy.yml), which the importer cannot install with no Galaxy server.
set -euo pipefail
venv=$1 tarball=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\nCHECK_REQUIRED_TAGS = False\n' >"$work/importer.cfg"
deps=$(python3 -c 'import sys,yaml;print("|".join(d.replace(".", r"\.") for d in yaml.safe_load(open("galaxy.yml"))["dependencies"]))')
tarball=$(realpath "$tarball")
cd "$work"
# As on Galaxy: none of this checkout's Ansible settings (make exports ANSIBLE_CONFIG, whose lab inventory
# made ansible-lint's syntax check of playbooks/verify.yml fail here).
env -u ANSIBLE_CONFIG -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_INVENTORY \
  GALAXY_IMPORTER_CONFIG="$work/importer.cfg" PATH="$venv/bin:$PATH" "$venv/bin/python" -m galaxy_importer.main "$tarball" \
  >"$work/out.log" 2>&1 || { cat "$work/out.log" >&2; exit 1; }
grep -q 'Importer processing completed successfully' "$work/out.log" || { cat "$work/out.log" >&2; exit 1; }
problems=$(grep -E 'WARNING|ERROR' "$work/out.log" | grep -vE "syntax-check\[unknown-module\]: couldn't resolve module/action '($deps)\." || true)
if [[ -n $problems ]]; then
  echo "galaxy-importer reports:" >&2
  echo "$problems" >&2
  exit 1
fi
echo "galaxy-import: $(basename "$tarball") imports; $(grep -cE 'WARNING|ERROR' "$work/out.log" || true) warning(s), all of them a dependency collection's module"
