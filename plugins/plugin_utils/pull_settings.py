# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull-mode settings of one host, checked on the controller before any host is touched.

Every problem is one sentence that names the inventory source, the host and the key, says what was found and
what is allowed. Pull mode is built for a cluster whose only node is its server: a node converging alone cannot
fetch a join token from, or be registered by, another node of its cluster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

#: Key types ssh-keygen -Y verify accepts in an allowed signers file.
SIGNER_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
REPO_URL = re.compile(r"^(?:(?:ssh|git|https|file)://\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+)$")
CREDENTIALS_IN_URL = re.compile(r"^[a-z]+://[^/@]+:[^/@]*@")
#: A systemd time span such as 15min, 1h 30min, 900 (seconds).
TIMESPAN = re.compile(r"^\s*(\d+\s*(us|ms|s|sec|m|min|h|hr|d|w)?\s*)+$")
BRANCH = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<!/)(?<!\.lock)$")


def _signer_problems(text: Any) -> list[str]:
    """Problems of an allowed signers text (``principals [options] keytype base64 [comment]`` a line)."""
    if not isinstance(text, str) or not text.strip():
        return ["is empty; allowed: the commit signers as ssh-keygen ALLOWED SIGNERS lines"]
    found: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        types = [i for i, f in enumerate(fields) if f in SIGNER_KEY_TYPES]
        if not types or types[0] == 0 or len(fields) <= types[0] + 1:
            found.append(
                f"line {number} ({line[:60]!r}) is not 'principals [options] keytype key'; key types allowed: "
                + ", ".join(sorted(SIGNER_KEY_TYPES))
            )
    return found


def pull_problems(
    hostvars: Mapping[str, Any], host: str, source: str = "the inventory", local_run: bool = False
) -> list[str]:
    """Every problem of ``host``'s pull-mode settings; empty when pull mode is off or the settings are good.

    ``local_run`` is true on the node itself (the timer's run), where the controller-side wheelhouse is not needed.
    """
    where = f"{source}, host {host}"
    mode = hostvars.get("edgefleet_pull_mode", False)
    if not isinstance(mode, bool):
        return [f"{where}: edgefleet_pull_mode: found {mode!r}; allowed: true or false"]
    if not mode:
        return []
    problems: list[str] = []
    servers = list(hostvars.get("edgefleet_cluster_servers") or [])
    agents = list(hostvars.get("edgefleet_cluster_agents") or [])
    cluster = hostvars.get("edgefleet_cluster", "(no cluster)")
    if servers != [host] or agents:
        problems.append(
            f"{where}: edgefleet_pull_mode: cluster {cluster} has servers [{', '.join(servers)}] and agents "
            f"[{', '.join(agents)}]; pull mode is allowed only for a cluster whose one node is its server (a node "
            "converging alone cannot take a join token from another node); run this cluster in push mode"
        )
    repo = hostvars.get("edgefleet_pull_repo", "")
    if not isinstance(repo, str) or not REPO_URL.match(repo):
        problems.append(
            f"{where}: edgefleet_pull_repo: found {repo!r}; allowed: a Git URL (ssh://, git@host:path, https://, "
            "git://, file://)"
        )
    elif CREDENTIALS_IN_URL.match(repo):
        problems.append(
            f"{where}: edgefleet_pull_repo: holds a password in the URL; allowed: a URL without credentials "
            "(use an SSH deploy key in edgefleet_pull_ssh_key)"
        )
    elif (repo.startswith("ssh://") or not re.match(r"^[a-z]+://", repo)) and not hostvars.get(
        "edgefleet_pull_known_hosts"
    ):
        problems.append(
            f"{where}: edgefleet_pull_known_hosts: is empty for the SSH repo {repo}; allowed: the Git host's public "
            "keys in known_hosts format (the node checks the host key strictly)"
        )
    branch = hostvars.get("edgefleet_pull_branch", "main")
    if not isinstance(branch, str) or not BRANCH.match(branch):
        problems.append(f"{where}: edgefleet_pull_branch: found {branch!r}; allowed: a Git branch name")
    inventory = hostvars.get("edgefleet_pull_inventory", "")
    if not isinstance(inventory, str) or not inventory or os.path.isabs(inventory) or ".." in inventory.split("/"):
        problems.append(
            f"{where}: edgefleet_pull_inventory: found {inventory!r}; allowed: the fleet inventory's path inside the "
            "repo (relative, no '..'), for example inventory/site.fleet.yml"
        )
    for problem in _signer_problems(hostvars.get("edgefleet_pull_allowed_signers", "")):
        problems.append(f"{where}: edgefleet_pull_allowed_signers: {problem}")
    for key in ("edgefleet_pull_interval", "edgefleet_pull_randomized_delay"):
        value = hostvars.get(key, "15min")
        if not isinstance(value, (str, int)) or isinstance(value, bool) or not TIMESPAN.match(str(value)):
            problems.append(f"{where}: {key}: found {value!r}; allowed: a systemd time span such as 15min or 1h")
    for key in ("edgefleet_pull_backoff_base", "edgefleet_pull_backoff_max"):
        value = hostvars.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{where}: {key}: found {value!r}; allowed: a whole number of seconds, at least 1")
    if not local_run:
        wheelhouse = hostvars.get("edgefleet_pull_wheelhouse", "")
        requirements = os.path.join(os.path.expanduser(str(wheelhouse)), "requirements.txt")
        if not isinstance(wheelhouse, str) or not wheelhouse or not os.path.isfile(requirements):
            problems.append(
                f"{where}: edgefleet_pull_wheelhouse: found {wheelhouse!r} with no requirements.txt; allowed: a "
                "controller folder of ansible-core wheels and a requirements.txt pinning each by --hash "
                "(docs/pull-mode.md, Bootstrap)"
            )
        else:
            with open(requirements, encoding="utf-8") as handle:
                pins = [line for line in handle.read().splitlines() if line.strip() and not line.startswith("#")]
            unpinned = [line.split()[0] for line in pins if "--hash=sha256:" not in line]
            if not pins or unpinned:
                problems.append(
                    f"{where}: edgefleet_pull_wheelhouse: {requirements} has "
                    + (f"lines without --hash=sha256: {', '.join(unpinned)}" if unpinned else "no requirement")
                    + "; allowed: every wheel pinned by its sha256"
                )
    return problems
