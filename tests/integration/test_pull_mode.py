# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull mode (docs/pull-mode.md) on a lab node that converges itself from a signed commit of a lab Git server.

Two containers of our own on the lab network (docs/lab.md, block .201-.205): ``edgefleet-pull1`` (10.231.0.201,
a single-server K3s site, pull mode) and ``edgefleet-git`` (10.231.0.202, ``git daemon``). Their image is the lab
node image plus git. The K3s here is the lab's stand-in (a real kube-apiserver on kine/SQLite behind a
k3s-shaped CLI), not real K3s.

One bootstrap (a push run of site.yml over SSH); after it the controller never opens an SSH connection to the
node: the timer's service is started with ``podman exec ... systemctl start`` (test instrumentation), the repo is
changed by ``git push`` from the controller to the Git server, and the network is cut with
``podman network disconnect``. In order:
  bootstrap  the first timer run converges the node, the status file names the commit, port 22 is closed
  label      a signed commit changing a node label is applied by the next run
  unsigned   a commit with no signature, then one signed by a key not in the allowed signers: both refused,
             nothing checked out or applied, the status says why
  cut        the node off the network: the run fails cleanly (status fetch_failed), the next one backs off, the API
             server keeps answering on the node; reconnected, the next run converges the pending signed commit
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LAB = REPO / "tests" / "lab"
CACHE = Path(os.environ.get("EDGEFLEET_CACHE", Path.home() / ".cache" / "edgefleet"))
LAB_KEY = CACHE / "lab" / "id_ed25519"
NETWORK = "edgefleet-lab"
NODE, NODE_IP = "edgefleet-pull1", "10.231.0.201"
GIT, GIT_IP = "edgefleet-git", "10.231.0.202"
BASE_IMAGE = "localhost/edgefleet-node:bookworm"
STATUS = "/var/lib/edgefleet/pull/status.json"
CHECKOUT = "/var/lib/edgefleet/pull/checkout"
BACKOFF_BASE = 2
#: The lab node image plus git: what a pull-mode node needs from its OS on top of a push-mode node.
CONTAINERFILE = """FROM {base}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git \\
 && rm -rf /var/lib/apt/lists/*
"""
#: Collections the site playbook loads on a node (besides edgefleet.k8s), vendored into the site repo.
VENDORED = ("ansible/posix", "community/general")


def sh(*argv: str, check: bool = True, timeout: int = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed (rc {proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def node_exec(*argv: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return sh("podman", "exec", NODE, *argv, check=check, timeout=timeout)


def pull_image() -> str:
    base_id = sh("podman", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).stdout.strip()
    recipe = CONTAINERFILE.format(base=base_id)
    tag = f"localhost/edgefleet-pull:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if sh("podman", "image", "exists", tag, check=False).returncode != 0:
        with subprocess.Popen(
            ["podman", "build", "-q", "-t", tag, "--label", "edgefleet.lab=1", "-f", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            out, err = proc.communicate(recipe, timeout=900)
        assert proc.returncode == 0, f"building {tag} failed: {out[-1000:]}{err[-2000:]}"
        # Images of older recipes (another lab image): podman refuses to remove one a container still uses.
        old = sh("podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/edgefleet-pull", check=False)
        for other in set(old.stdout.split()) - {tag}:
            sh("podman", "rmi", other, check=False)
    return tag


#: ansible-core's dependencies (and theirs), pinned to the controller's versions: the node runs what CI tested.
WHEEL_DEPS = ("jinja2", "pyyaml", "cryptography", "packaging", "resolvelib", "markupsafe", "cffi", "pycparser")


def wheelhouse(dest: Path) -> Path:
    """ansible-core and its dependencies at the controller's versions, plus pip, as wheels pinned by sha256."""
    from importlib import metadata

    pins = [f"ansible-core=={metadata.version('ansible-core')}", "pip"]
    for dist in WHEEL_DEPS:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    cache = CACHE / "pull-wheelhouse" / hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12]
    if not (cache / "requirements.txt").exists():
        tmp = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        sh(
            str(VENV_BIN / "python"), "-m", "pip", "download", "--quiet", "--dest", str(tmp), "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux2014_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", *pins,
        )  # fmt: skip
        lines = []
        for wheel in sorted(tmp.glob("*.whl")):
            name, version = wheel.name.split("-")[:2]
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{name.replace('_', '-').lower()}=={version} --hash=sha256:{digest}")
        (tmp / "requirements.txt").write_text("\n".join(lines) + "\n")
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
    shutil.copytree(cache, dest)
    return dest


class SiteRepo:
    """The site repo on the controller: the collection, the vendored collections, the fleet inventory."""

    def __init__(self, root: Path, keys: Path) -> None:
        self.root = root
        self.keys = keys
        self.url = f"git://{GIT_IP}/site.git"

    def git(self, *args: str) -> str:
        return sh("git", "-C", str(self.root), *args).stdout.strip()

    def keygen(self, name: str) -> Path:
        key = self.keys / name
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        return key

    def signer_line(self, key: Path) -> str:
        return "fleet-admin@edgefleet.lab " + " ".join((key.with_suffix(".pub")).read_text().split()[:2])

    def write_inventory(self, label: str) -> None:
        inv = self.root / "inventory"
        (inv / "group_vars").mkdir(parents=True, exist_ok=True)
        (inv / "pull.fleet.yml").write_text(
            "---\n# The pull-mode lab site: one K3s server (the lab stand-in, not real K3s).\n"
            "plugin: edgefleet.k8s.fleet\n"
            "defaults: {region: lab, model: podman-node, channel: stable, arch: amd64}\n"
            "sites:\n"
            "  - name: lab-pull\n    distribution: k3s\n    version: v1.36.3+lab\n    datastore: sqlite\n"
            "    gitops: {engine: none}\n"
            f"    labels: {{pulltest: {label}}}\n"
            f"    nodes:\n      - {{name: pull1, address: {NODE_IP}, role: server}}\n"
        )

    def create(self, signing_key: Path, allowed: str) -> None:
        self.root.mkdir(parents=True)
        self.git("init", "--quiet", "-b", "main")
        for key, value in (
            ("user.name", "fleet admin"),
            ("user.email", "fleet-admin@edgefleet.lab"),
            ("gpg.format", "ssh"),
            ("user.signingkey", str(signing_key)),
        ):
            self.git("config", key, value)
        coll = self.root / "collections" / "ansible_collections"
        files = sh("git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard").stdout.split()
        for rel in files:
            if rel.split("/")[0] in ("tests", "extensions", ".ci", "collections") or not (REPO / rel).is_file():
                continue
            target = coll / "edgefleet" / "k8s" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)
        where = sh(str(VENV_BIN / "python"), "-c", "import ansible_collections as a; print(a.__path__[0])")
        site_packages = Path(where.stdout.strip())
        for name in VENDORED:
            shutil.copytree(site_packages / name, coll / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        (self.root / "ansible.cfg").write_text(
            "[defaults]\ninterpreter_python = auto_silent\nhost_key_checking = False\n"
            "[inventory]\nenable_plugins = edgefleet.k8s.fleet, ansible.builtin.yaml\nany_unparsed_is_failed = True\n"
        )
        self.write_inventory("v1")
        group_vars = {
            # Lab connection settings (the bootstrap's SSH; the node's own runs are -c local).
            "ansible_user": "edge",
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(LAB_KEY),
            "ansible_python_interpreter": "/usr/bin/python3",
            "edgefleet_distribution_unit_type": "exec",
            "edgefleet_artifacts_components": ["binary"],
            "edgefleet_pull_mode": True,
            "edgefleet_pull_repo": self.url,
            "edgefleet_pull_inventory": "inventory/pull.fleet.yml",
            "edgefleet_pull_allowed_signers": allowed,
            # The test starts every run itself; the timer stays quiet and failures back off briefly.
            "edgefleet_pull_interval": "1h",
            "edgefleet_pull_randomized_delay": "1s",
            "edgefleet_pull_backoff_base": BACKOFF_BASE,
            "edgefleet_pull_backoff_max": 4 * BACKOFF_BASE,
        }
        group_vars_file = self.root / "inventory" / "group_vars" / "all.yml"
        group_vars_file.write_text("---\n" + json.dumps(group_vars, indent=2) + "\n")
        self.commit("site repo for the pull-mode node", sign=True)

    def commit(self, message: str, sign: bool, key: Path | None = None) -> str:
        self.git("add", "-A")
        args = ["commit", "--quiet", "-m", message]
        if sign:
            args.insert(1, "-S" if key is None else f"-S{key}")
        else:
            args.insert(1, "--no-gpg-sign")
        self.git(*args)
        return self.git("rev-parse", "HEAD")

    def push(self) -> None:
        self.git("push", "--quiet", "--force", self.url, "main")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteRepo]:
    if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0 or not LAB_KEY.exists():
        pytest.fail(f"the lab network {NETWORK} or the lab key {LAB_KEY} is missing: run tests/lab/node.sh prepare")
    image = pull_image()
    work = tmp_path_factory.mktemp("pull")
    env = dict(os.environ, LAB_IMAGE=image)
    sh(str(LAB / "node.sh"), "rm", NODE, GIT, check=False)  # a fresh node: the bootstrap is what is tested
    try:
        for name, host, ip in ((GIT, "git", GIT_IP), (NODE, "pull1", NODE_IP)):
            sh(str(LAB / "node.sh"), "run", name, host, ip, "pull", "pull-mode", env=env)
        sh("podman", "exec", GIT, "sh", "-c", "mkdir -p /srv/git && git init --quiet --bare -b main /srv/git/site.git")
        sh("podman", "exec", "-d", GIT, "git", "daemon", "--reuseaddr", "--base-path=/srv/git", "--export-all",
           "--enable=receive-pack", f"--listen={GIT_IP}", "/srv/git")  # fmt: skip
        keys = work / "keys"
        keys.mkdir()
        site = SiteRepo(work / "site", keys)
        signer = site.keygen("signer")
        site.create(signer, site.signer_line(signer))
        for _attempt in range(50):
            if sh("git", "ls-remote", site.url, check=False).returncode == 0:
                break
            time.sleep(0.2)
        site.push()
        site.wheels = wheelhouse(work / "wheels")  # type: ignore[attr-defined]
        yield site
    finally:
        sh(str(LAB / "node.sh"), "rm", NODE, GIT, check=False)


def status() -> dict[str, Any]:
    out = node_exec("cat", STATUS, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def timer_run() -> subprocess.CompletedProcess[str]:
    """One run of the timer's service, as the timer starts it (waits for the oneshot to end)."""
    return node_exec("systemctl", "start", "edgefleet-pull.service", check=False, timeout=900)


def wait_backoff() -> None:
    wait = float(status().get("next_attempt", 0) or 0) - time.time()
    if wait > 0:
        time.sleep(wait + 0.5)


def config_has_label(value: str) -> bool:
    return f"pulltest={value}" in node_exec("cat", "/etc/rancher/k3s/config.yaml").stdout


def api_ready() -> bool:
    out = node_exec("k3s", "kubectl", "get", "--raw", "/readyz", check=False, timeout=60)
    return out.returncode == 0 and out.stdout.strip().endswith("ok")


def port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=3):
            return True
    except OSError:
        return False


def test_pull_mode(lab: SiteRepo) -> None:
    started = time.monotonic()
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    boot = sh(
        str(VENV_BIN / "ansible-playbook"), "playbooks/site.yml", "-i", str(lab.root / "inventory" / "pull.fleet.yml"),
        "-e", f"edgefleet_pull_wheelhouse={lab.wheels}",  # type: ignore[attr-defined]
        cwd=REPO, env=env, check=False, timeout=900,
    )  # fmt: skip
    assert boot.returncode == 0, boot.stdout[-5000:] + boot.stderr[-2000:]
    head = lab.git("rev-parse", "HEAD")

    # bootstrap: the first run, started by the bootstrap, converges the node by itself.
    deadline = time.monotonic() + 600
    while not status() and time.monotonic() < deadline:
        time.sleep(3)
    first = status()
    log = node_exec("cat", "/var/lib/edgefleet/pull/last-run.log", check=False).stdout
    assert first.get("result") == "converged", (first, log[-4000:])
    assert first["commit"] == head and first["failed"] is False and first["node"] == "pull1"
    assert node_exec("git", "-C", CHECKOUT, "rev-parse", "HEAD").stdout.strip() == head
    assert oct(int(node_exec("stat", "-c", "%a", STATUS).stdout.strip(), 8)) == "0o644"
    # Pull mode closes inbound ssh, also to the controller; sshd itself still runs on the node.
    assert not port_open(NODE_IP, 22), "port 22 of the pull-mode node answers from the controller"
    assert "dport 22" not in node_exec("nft", "list", "table", "inet", "edgefleet").stdout
    assert api_ready()
    # The run's fleet report (the fleet_summary callback on the node) sits next to the status file.
    report = json.loads(node_exec("cat", first["report"]).stdout)
    assert [(n["name"], n["state"]) for n in report["nodes"]] == [("pull1", "ready")], report
    # A second run on the same commit changes nothing.
    assert timer_run().returncode == 0
    again = status()
    assert again["result"] == "converged" and again["changed"] == 0, again

    # label: a signed commit is applied by the next timer run.
    lab.write_inventory("v2")
    v2 = lab.commit("label pulltest=v2", sign=True)
    lab.push()
    assert timer_run().returncode == 0, status()
    st = status()
    assert st["result"] == "converged" and st["commit"] == v2 and st["changed"] > 0, st
    assert config_has_label("v2")

    # unsigned, then wrongly signed: refused, nothing checked out or applied.
    lab.write_inventory("v3")
    unsigned = lab.commit("label pulltest=v3, unsigned", sign=False)
    lab.push()
    assert timer_run().returncode != 0
    st = status()
    assert st["result"] == "refused" and st["failed"] is True and st["fetched_commit"] == unsigned, st
    assert st["commit"] == v2 and unsigned in st["message"], st
    assert node_exec("git", "-C", CHECKOUT, "rev-parse", "HEAD").stdout.strip() == v2
    assert config_has_label("v2") and not config_has_label("v3")

    intruder = lab.keygen("intruder")
    lab.write_inventory("v4")
    forged = lab.commit("label pulltest=v4, signed by a key not allowed", sign=True, key=intruder)
    lab.push()
    wait_backoff()
    assert timer_run().returncode != 0
    st = status()
    assert st["result"] == "refused" and st["fetched_commit"] == forged and st["commit"] == v2, st
    assert st["consecutive_failures"] == 2
    assert node_exec("git", "-C", CHECKOUT, "rev-parse", "HEAD").stdout.strip() == v2
    assert config_has_label("v2") and not config_has_label("v4")

    # cut: a good commit waits in the repo while the node is off the network.
    lab.write_inventory("v5")
    v5 = lab.commit("label pulltest=v5", sign=True)
    lab.push()
    wait_backoff()
    sh("podman", "network", "disconnect", NETWORK, NODE)
    try:
        assert timer_run().returncode != 0
        cut = status()
        assert cut["result"] == "fetch_failed" and cut["failed"] is True and cut["commit"] == v2, cut
        assert "fetch" in cut["message"] and cut["next_attempt"] > time.time() - 1, cut
        # Backing off: the next run right away fetches nothing and leaves the status as it was.
        assert timer_run().returncode == 0
        assert status() == cut
        assert api_ready(), "the API server stopped answering on the node while it was off the network"
        assert config_has_label("v2")
    finally:
        sh("podman", "network", "connect", "--ip", NODE_IP, NETWORK, NODE)
    wait_backoff()
    assert timer_run().returncode == 0, status()
    back = status()
    assert back["result"] == "converged" and back["commit"] == v5 and back["consecutive_failures"] == 0, back
    assert config_has_label("v5") and api_ready()
    assert not port_open(NODE_IP, 22)
    print(f"pull-mode scenario took {time.monotonic() - started:.0f} s")
