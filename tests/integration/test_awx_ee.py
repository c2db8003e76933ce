# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment (issue 15, acceptance 1; docs/awx.md), built by `make ee` (EE_IMAGE overrides
localhost/edgefleet-ee:latest): the collection inside it lists and documents every plugin, and an
ansible-runner job with --process-isolation (as AWX runs a job in an EE) converges a single-server K3s site on a
lab node of this test's own (edgefleet-awx2, 10.231.0.207; the EE container joins the lab network at
10.231.0.208). The K3s there is the lab's stand-in, not real K3s. Run by make test-ee."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import awx
import pytest

pytestmark = pytest.mark.ee

IMAGE = os.environ.get("EE_IMAGE", "localhost/edgefleet-ee:latest")
NODE = awx.LabNode(name="edgefleet-awx2", host="awx2", address="10.231.0.207")
EE_ADDRESS = "10.231.0.208"


def podman(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def image() -> str:
    if podman("image", "exists", IMAGE).returncode != 0:
        pytest.fail(f"no image {IMAGE}: run make ee")
    return IMAGE


def test_ee_lists_and_documents_every_plugin_of_the_collection() -> None:
    types = sorted(awx.expected_plugins())
    script = "; ".join(f"ansible-doc -t {t} -l edgefleet.k8s --json; echo '@@'" for t in types)
    proc = podman("run", "--rm", IMAGE, "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = dict(zip(types, (json.loads(part) for part in proc.stdout.split("@@")[: len(types)]), strict=True))
    for ptype in types:
        assert set(listed[ptype]) == awx.expected_plugins()[ptype], f"{ptype}: {sorted(listed[ptype])}"
    names = sorted(awx.expected_plugins()["module"])
    doc = podman("run", "--rm", IMAGE, "ansible-doc", "-t", "module", "--json", *names)
    assert doc.returncode == 0, doc.stderr[-2000:]
    pages = json.loads(doc.stdout)
    assert all(pages[n]["doc"]["short_description"] for n in names)
    # The EE's copy, not a mount of the checkout.
    where = podman("run", "--rm", IMAGE, "ansible-galaxy", "collection", "list", "edgefleet.k8s", "--format", "json")
    assert list(json.loads(where.stdout)) == ["/usr/share/ansible/collections/ansible_collections"], where.stdout


@pytest.fixture(scope="module")
def node() -> Iterator[awx.LabNode]:
    with awx.own_node(NODE) as own:
        yield own


def test_site_through_the_ee_converges_with_failed_0(node: awx.LabNode, tmp_path: Path) -> None:
    tarball = awx.build(tmp_path / "build")
    pdd = awx.private_data_dir(tmp_path / "pdd", tarball, [node], ee=True)
    job = awx.run_job(
        pdd,
        "ee1",
        extra=[
            "--process-isolation",
            "--process-isolation-executable",
            "podman",
            "--container-image",
            IMAGE,
            # Rootful podman here: the runner's files (the key's pipe, artifacts) are root's, mode 0600, so the
            # job runs as the container's root. AWX runs rootless podman, where its user maps onto the EE's.
            "--container-option=--user=0",
            "--container-option=--network=edgefleet-lab",
            f"--container-option=--ip={EE_ADDRESS}",
            f"--container-volume-mount={awx.CACHE / 'bundle'}:{awx.EE_BUNDLE}:ro",
        ],
    )
    assert job.status == "successful" and job.rc == 0, job.tail()
    stats = job.stats()
    assert stats["failures"] == {} and stats["dark"] == {}, stats
    assert stats["ok"].get(node.host, 0) > 0, stats
    assert job.first_task_path().startswith("/usr/share/ansible/collections/"), job.first_task_path()
    fleet = stats["artifact_data"]["edgefleet"]
    assert fleet["ok"] is True and fleet["clusters"][awx.CLUSTER]["servers_ready"] == 1, fleet
    command = json.loads((job.artifacts / "command").read_text())["command"]
    assert command[0] == "podman" and IMAGE in command, command[:12]
