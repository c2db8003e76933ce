# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One K3s flag table for the collection and the lab stand-in.

The collection's validation and the stand-in's parser are run on every flag of the table, on every
name either side exports, on names K3s dropped or we once misspelt, and on a name that is no flag;
what each side accepts, and how it takes the value, must be what the table says. A list kept on
one side only, or a side that stops reading the table, fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

_REPO = Path(__file__).resolve().parents[4]
_COLLECTIONS = _REPO / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
_CONTROLPLANE = _REPO / "tests" / "lab" / "controlplane"
_STANDIN = _CONTROLPLANE / "standin"
if str(_STANDIN) not in sys.path:
    sys.path.insert(0, str(_STANDIN))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import (
    config,
    k3s_flag_table,
    k3s_flags,
    registry,
)
from edgefleet_standin import flags as standin_flags
from edgefleet_standin import k3s as standin_k3s
from edgefleet_standin.core import StandinError

TABLE = {f.name: f for f in k3s_flag_table.FLAGS}
ROLES = k3s_flag_table.ROLES
NOT_A_FLAG = "edgefleet-no-such-flag"
# Names that are not K3s flags any more, or that one side once had wrong.
FORMER_NAMES = ("flannel-cni-conf-file", "no-flannel", "no-deploy", "cluster-secret", "kube-apiserver-args")


def _probe_names() -> list[str]:
    names = set(TABLE) | {NOT_A_FLAG, *FORMER_NAMES}
    names |= k3s_flags.SERVER_KEYS | k3s_flags.AGENT_KEYS | k3s_flags.BOOL_KEYS | k3s_flags.LIST_KEYS
    names |= standin_flags.SERVER | standin_flags.AGENT | standin_flags.BOOLS | standin_flags.LISTS
    return sorted(names)


def _expected(role: str, name: str) -> str | None:
    """The kind the table gives ``name`` for ``role``, or None when the role does not take it."""
    flag = TABLE.get(name)
    return flag.kind if flag and role in flag.roles else None


# ----------------------------------------------------------------------------- the collection's side


def _collection_problems(role: str, layer: dict[str, Any], user: bool = False) -> list[str]:
    """The problems the collection's K3s validation reports for one config layer."""
    dist = registry.get("k3s")
    layers = {"overrides": layer} if user else {"settings": layer}
    request = config.ConfigRequest(host="node1", role=role, cis=False, **layers)
    return list(dist.plan(request).problems)


def _collection_kind(role: str, name: str) -> str | None:
    def takes(value: Any) -> bool:
        return not [p for p in _collection_problems(role, {name: value}) if f"key '{name}'" in p]

    as_bool, as_str, as_list = takes(True), takes("x"), takes(["x", "y"])
    if not (as_bool or as_str or as_list):
        return None
    if as_bool and not as_str:
        return k3s_flag_table.BOOL
    return k3s_flag_table.LIST if as_list else k3s_flag_table.STR


# ----------------------------------------------------------------------------- the stand-in's side


@pytest.fixture
def no_k3s_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for env in standin_k3s.ENV_FLAGS:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("K3S_CONFIG_FILE", raising=False)
    yield


def _standin_kind(role: str, name: str, tmp: Path) -> str | None:
    """How the stand-in's ``k3s <role>`` takes ``name``: from a config file and on the command line."""
    cfg = tmp / f"{role}-{name}.yaml"
    cfg.write_text(yaml.safe_dump({name: "x"}))
    try:
        from_file = standin_k3s.load_config(role, ["--config", str(cfg)])
    except StandinError as exc:
        if f'unknown key "{name}"' not in str(exc):
            raise
        from_file = None
    missing = str(tmp / "no-config.yaml")

    def cli(*args: str) -> dict[str, Any] | None:
        argv = list(args) if name == "config" else ["--config", missing, *args]
        try:
            return standin_k3s.load_config(role, argv)
        except StandinError as exc:
            if "unknown flag" in str(exc) or "needs a value" in str(exc):
                return None
            raise

    on_cli = cli(f"--{name}=a")
    assert (from_file is None) == (on_cli is None), f"stand-in {role}: '{name}' is taken in one place only"
    if from_file is None:
        return None
    alone = cli(f"--{name}")
    if alone is not None and alone.get(name) is True:
        return k3s_flag_table.BOOL
    repeated = cli(f"--{name}=a", f"--{name}=b")
    if repeated is not None and repeated.get(name) == ["a", "b"] and from_file.get(name) == ["x"]:
        return k3s_flag_table.LIST
    return k3s_flag_table.STR


# ----------------------------------------------------------------------------- the table


def test_the_table_is_well_formed() -> None:
    names = [f.name for f in k3s_flag_table.FLAGS]
    assert len(names) == len(set(names)), "a flag is listed twice"
    shorts = [f.short for f in k3s_flag_table.FLAGS if f.short]
    assert len(shorts) == len(set(shorts)), "a short flag is used twice"
    for flag in k3s_flag_table.FLAGS:
        assert flag.name and not flag.name.startswith("-") and flag.name == flag.name.lower(), flag
        assert flag.roles and set(flag.roles) <= set(ROLES), flag
        assert flag.kind in k3s_flag_table.KINDS, flag
        assert not (flag.secret and flag.kind != k3s_flag_table.STR), f"a secret takes one value: {flag}"
    assert k3s_flag_table.K3S_VERSION.startswith("v1.")


def test_the_collections_sets_are_the_table() -> None:
    by_role = {r: {f.name for f in k3s_flag_table.FLAGS if r in f.roles} for r in ROLES}
    assert by_role["server"] == k3s_flags.SERVER_KEYS
    assert by_role["agent"] == k3s_flags.AGENT_KEYS
    assert by_role["server"] - by_role["agent"] == k3s_flags.SERVER_ONLY_KEYS
    assert by_role["agent"] - by_role["server"] == k3s_flags.AGENT_ONLY_KEYS
    assert {f.name for f in k3s_flag_table.FLAGS if f.kind == "bool"} == k3s_flags.BOOL_KEYS
    assert {f.name for f in k3s_flag_table.FLAGS if f.kind == "list"} == k3s_flags.LIST_KEYS
    assert {n for n in k3s_flags.LIST_KEYS if n.endswith("-arg")} == k3s_flags.ARG_LIST_KEYS
    assert {f.name for f in k3s_flag_table.FLAGS if f.secret} == k3s_flags.SECRET_KEYS
    assert {f.name for f in k3s_flag_table.FLAGS if f.managed} == k3s_flags.MANAGED_KEYS


def test_the_stand_in_reads_the_collections_table_file() -> None:
    assert Path(standin_flags.table.__file__).resolve() == Path(k3s_flag_table.__file__).resolve()
    # A copy beside the stand-in's code would shadow the collection's file in a checkout.
    assert not (_STANDIN / "edgefleet_standin" / "k3s_flag_table.py").exists()
    assert {f.short: f.name for f in k3s_flag_table.FLAGS if f.short} == standin_flags.SHORT


# ----------------------------------------------------------------------------- both sides, by behaviour


@pytest.mark.parametrize("role", ROLES)
def test_collection_and_stand_in_accept_the_same_flags_the_same_way(
    role: str, tmp_path: Path, no_k3s_env: None
) -> None:
    wrong: list[str] = []
    for name in _probe_names():
        want = _expected(role, name)
        got = {"collection": _collection_kind(role, name), "stand-in": _standin_kind(role, name, tmp_path)}
        for side, kind in got.items():
            if kind != want:
                wrong.append(f"{role} {name!r}: table says {want or 'refused'}, {side} has {kind or 'refused'}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", ROLES)
def test_secret_and_managed_flags_are_refused_in_user_overrides(role: str) -> None:
    for flag in k3s_flag_table.FLAGS:
        if role not in flag.roles:
            continue
        value: Any = True if flag.kind == "bool" else "x"
        problems = [p for p in _collection_problems(role, {flag.name: value}, user=True) if f"'{flag.name}'" in p]
        assert bool(problems) == (flag.secret or flag.managed), (flag, problems)


def test_the_disagreements_stay_resolved(tmp_path: Path, no_k3s_env: None) -> None:
    """The facts each side once had wrong, checked on both sides."""
    facts = {
        ("server", "flannel-cni-conf"): "str",
        ("agent", "flannel-cni-conf"): "str",
        ("server", "flannel-cni-conf-file"): None,
        ("agent", "flannel-cni-conf-file"): None,
        ("agent", "disable-apiserver-lb"): "bool",
        ("server", "disable-apiserver-lb"): None,
        ("agent", "bind-address"): "str",
        ("server", "bind-address"): "str",
        ("agent", "enable-pprof"): "bool",
        ("server", "enable-pprof"): "bool",
        ("server", "cluster-dns"): "list",
        ("agent", "cluster-dns"): None,
        ("server", "nonroot-devices"): "bool",
        ("agent", "nonroot-devices"): "bool",
        ("server", "system-default-registry"): "str",
        ("agent", "system-default-registry"): None,
    }
    for (role, name), kind in facts.items():
        assert _expected(role, name) == kind, (role, name)
        assert _collection_kind(role, name) == kind, (role, name)
        assert _standin_kind(role, name, tmp_path) == kind, (role, name)


# ----------------------------------------------------------------------------- the bundle


def _stage(bundle_sh: Path, dest: Path) -> str:
    out = subprocess.run(["bash", str(bundle_sh), "--stage-lib", str(dest)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_bundle_ships_the_collections_table(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _stage(_CONTROLPLANE / "bundle.sh", lib)
    shipped = lib / "edgefleet_standin" / "k3s_flag_table.py"
    assert shipped.read_bytes() == Path(k3s_flag_table.__file__).read_bytes()
    probe = (
        "import json; from edgefleet_standin import flags as f; "
        "print(json.dumps({'file': f.table.__file__, 'server': sorted(f.SERVER), 'agent': sorted(f.AGENT)}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(lib)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env, cwd=tmp_path
    )
    seen = json.loads(out.stdout)
    assert Path(seen["file"]).resolve() == shipped.resolve()
    assert set(seen["server"]) == k3s_flags.SERVER_KEYS
    assert set(seen["agent"]) == k3s_flags.AGENT_KEYS


def test_a_changed_table_changes_the_bundle_cache_key(tmp_path: Path) -> None:
    # A copy of the tree bundle.sh reads, so the table can be changed without touching the real one.
    root = tmp_path / "tree"
    here = root / "tests" / "lab" / "controlplane"
    shutil.copytree(_STANDIN, here / "standin", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("bundle.sh", "versions.env"):
        shutil.copy2(_CONTROLPLANE / name, here / name)
    table = root / "plugins" / "module_utils" / "_distribution" / "k3s_flag_table.py"
    table.parent.mkdir(parents=True)
    shutil.copy2(k3s_flag_table.__file__, table)

    first = _stage(here / "bundle.sh", tmp_path / "a")
    assert _stage(here / "bundle.sh", tmp_path / "b") == first
    table.write_text(table.read_text() + "# a changed table\n")
    assert _stage(here / "bundle.sh", tmp_path / "c") != first
