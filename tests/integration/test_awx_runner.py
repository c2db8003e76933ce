# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX-style jobs (issue 15, acceptance 2; docs/awx.md): `ansible-runner run` on a private data directory laid
out as AWX lays it out, converging one single-server K3s site on a lab node of this test's own
(edgefleet-awx1, 10.231.0.206; docs/lab.md), then asserting from the runner's artifacts only.

The K3s on the node is the lab's stand-in (a real kube-apiserver on kine/SQLite behind a K3s-shaped CLI,
tests/lab/controlplane), not real K3s. Run by make test-awx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import awx
import pytest

pytestmark = pytest.mark.awx

NODE = awx.LabNode(name="edgefleet-awx1", host="awx1", address="10.231.0.206")


@pytest.fixture(scope="module")
def node() -> Iterator[awx.LabNode]:
    with awx.own_node(NODE) as own:
        yield own


@pytest.fixture(scope="module")
def job_dir(node: awx.LabNode, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("awx")
    tarball = awx.build(base / "build")
    return awx.private_data_dir(base / "pdd", tarball, [node])


def test_runner_job_converges_the_site_and_publishes_the_fleet_stats(job_dir: Path) -> None:
    job = awx.run_job(job_dir, "job1")
    assert job.status == "successful", job.tail()
    assert job.rc == 0, job.tail()
    stats = job.stats()
    assert stats["failures"] == {} and stats["dark"] == {}, stats
    assert stats["changed"].get(NODE.host, 0) > 0, f"a first run on a new node changed nothing: {stats}"
    # The job ran the collection installed from the tarball, not the checkout.
    assert str(job_dir / "requirements_collections") in job.first_task_path(), job.first_task_path()
    # set_stats of the verify play (edgefleet.k8s.fleet_stats), as AWX stores it with the job.
    fleet = stats["artifact_data"]["edgefleet"]
    assert fleet["clusters"][awx.CLUSTER] == {"servers_ready": 1, "servers": 1, "agents_ready": 0, "agents": 0}, fleet
    assert fleet["retry"] == [], fleet
    assert fleet["ok"] is True and fleet["schema_version"] == 1, fleet
    assert awx.CLUSTER in job.stdout(), "the fleet_summary table is missing from the job output"


def test_second_runner_job_changes_nothing(job_dir: Path) -> None:
    first = job_dir / "artifacts" / "job1" / "status"
    if not first.is_file():
        pytest.skip("the first job did not run")
    job = awx.run_job(job_dir, "job2")
    assert job.status == "successful" and job.rc == 0, job.tail()
    stats = job.stats()
    assert stats["ok"].get(NODE.host, 0) > 0, stats
    assert sum(stats["changed"].values()) == 0, f"the second job changed something: {stats['changed']}"
    assert stats["artifact_data"]["edgefleet"]["ok"] is True, stats["artifact_data"]


def test_runner_job_with_an_unreachable_node_fails_and_says_so_in_its_stats(job_dir: Path) -> None:
    """The artifacts are read, not assumed: a node that does not answer gives status failed and rc != 0."""
    bad = awx.private_data_dir(
        job_dir.parent / "pdd-bad",
        next((job_dir.parent / "build").glob("*.tar.gz")),
        [awx.LabNode(name="-", host="awx9", address="10.231.0.210")],
    )
    job = awx.run_job(bad, "bad", timeout=600)
    assert job.status == "failed" and job.rc != 0, job.tail()
    stats = job.stats()
    assert "awx9" in stats["dark"] or "awx9" in stats["failures"], stats
