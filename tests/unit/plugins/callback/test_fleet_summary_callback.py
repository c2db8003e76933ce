# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_summary callback in real ansible-playbook runs on this machine.

A fleet file (the edgefleet.k8s.fleet inventory plugin) with two clusters whose nodes are all this machine
over the local connection, except site-a's agent a3, which is 127.0.0.13 port 1 over SSH, where nothing
listens: Ansible reports it UNREACHABLE. site-b's server b1 fails a task, site-a's agent a2 fails one that a
rescue block handles. Nothing leaves loopback. Each run takes a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = """\
- name: Check the bundles on the controller
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Nothing to check here
      ansible.builtin.debug:
        msg: the controller is no fleet node

- name: Converge
  hosts: edgefleet
  gather_facts: false
  tasks:
    - name: Write the node's config
      ansible.builtin.command: "true"
    - name: Fetch from the mirror, else from the fallback
      block:
        - name: Fetch from the mirror
          ansible.builtin.fail:
            msg: mirror down
          when: inventory_hostname == 'a2'
      rescue:
        - name: Fetch from the fallback
          ansible.builtin.debug:
            msg: fallback
    - name: Start the unit
      ansible.builtin.fail:
        msg: "unit failed on {{ inventory_hostname }}"
      when: inventory_hostname in fail_hosts | default(['b1'])

- name: Verify
  hosts: edgefleet
  gather_facts: false
  tasks:
    - name: Record this node's state for the fleet summary
      ansible.builtin.set_fact:
        edgefleet_verify:
          cluster: "{{ edgefleet_cluster }}"
          distribution: "{{ edgefleet_distribution }}"
          version: "{{ edgefleet_version }}"
          datastore: "{{ edgefleet_datastore }}"
          role: "{{ edgefleet_node_role }}"
          unit_active: "True"
          registered: true
          needs_node: true
          gitops_engine: "{{ edgefleet_gitops_engine }}"
          gitops_path: ""
          overlays: []
          artifact_bytes_sent: 100

# What docs/fleet-report.md asks the site playbook to end with, for AWX/AAP.
- name: Publish the fleet result for AWX/AAP
  hosts: edgefleet
  gather_facts: false
  tasks:
    - name: Set the per-cluster counts and the nodes to retry as job artifacts
      ansible.builtin.set_stats:
        data:
          edgefleet: "{{ hostvars | edgefleet.k8s.fleet_stats(ansible_play_hosts_all) }}"
        aggregate: false
      run_once: true
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    doc = {
        "plugin": "edgefleet.k8s.fleet",
        "defaults": {
            "region": "test",
            "model": "none",
            "channel": "stable",
            "arch": "amd64",
            "gitops": {"engine": "none"},
        },
        "sites": [
            {
                "name": "site-a",
                "distribution": "k3s",
                "version": "v1.36.3+lab",
                "nodes": [
                    {"name": "a1", "address": "127.0.0.11", "role": "server", "vars": local},
                    {"name": "a2", "address": "127.0.0.12", "role": "agent", "vars": local},
                    {
                        "name": "a3",
                        "address": "127.0.0.13",
                        "role": "agent",
                        "vars": {
                            "ansible_connection": "{{ a3_connection | default('ssh') }}",
                            "ansible_port": 1,
                            "ansible_python_interpreter": sys.executable,
                            "node_secret": "must-not-be-reported",
                        },
                    },
                ],
            },
            {
                "name": "site-b",
                "distribution": "k0s",
                "version": "v1.36.3+lab",
                "nodes": [
                    {"name": "b1", "address": "127.0.0.21", "role": "server", "vars": local},
                    {"name": "b2", "address": "127.0.0.22", "role": "agent", "vars": local},
                ],
            },
        ],
    }
    (tmp_path / "test.fleet.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {REPO / 'collections'}\n"
        "callbacks_enabled = edgefleet.k8s.fleet_summary\n"
        "stdout_callback = ansible.builtin.default\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        "[inventory]\n"
        "enable_plugins = edgefleet.k8s.fleet, ansible.builtin.host_list\n"
        "any_unparsed_is_failed = True\n"
        "[ssh_connection]\n"
        "ssh_args = -o ConnectTimeout=5 -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no\n"
        # The report path comes from the ini key, the retry file from the environment variable.
        "[callback_edgefleet_fleet_summary]\n"
        f"report_path = {tmp_path / 'out' / 'report.json'}\n"
    )
    return tmp_path


def run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "EDGEFLEET_"))}
    env.update(
        ANSIBLE_CONFIG=str(work / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        ANSIBLE_HOME=str(work / "home"),
        EDGEFLEET_RETRY_FILE=str(work / "out" / "retry"),
        NO_COLOR="1",
        ANSIBLE_SHOW_CUSTOM_STATS="true",
    )
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(work / "test.fleet.yml"), str(work / "site.yml"), *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def summary(stdout: str) -> list[str]:
    """The table's lines, after the EDGEFLEET SUMMARY banner."""
    assert "EDGEFLEET SUMMARY" in stdout, stdout
    lines = stdout.split("EDGEFLEET SUMMARY", 1)[1].splitlines()[1:]
    return [line for line in lines if line.strip()]


def custom_stats(stdout: str) -> dict[str, Any]:
    """What set_stats left in the run's custom stats (stats.custom['_run'], AWX's artifact_data), as the
    default callback prints it."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith("RUN:"))
    data = json.loads(line.split("RUN:", 1)[1])
    assert isinstance(data, dict)
    return data


def report(work: Path) -> dict[str, Any]:
    data = json.loads((work / "out" / "report.json").read_text())
    assert isinstance(data, dict)
    return data


def test_failed_and_unreachable_nodes_then_retry_from_the_file(fleet: Path) -> None:
    first = run(fleet)
    assert first.returncode != 0
    assert "UNREACHABLE" in first.stdout

    table = summary(first.stdout)
    assert table[0].split()[-2:] == ["not", "ready"]
    site_a = next(line for line in table if line.startswith("site-a"))
    site_b = next(line for line in table if line.startswith("site-b"))
    # a3 was lost before verify and still counts in site-a; the rescued failure of a2 does not count.
    assert "1/1 ready" in site_a and "1/2 ready" in site_a and site_a.endswith("a3 (unreachable)")
    assert "0/1 ready" in site_b and "1/1 ready" in site_b and site_b.endswith("b1 (failed)")
    assert "k0s v1.36.3+lab" in site_b

    data = report(fleet)
    assert data["schema_version"] == 1
    assert data["run"]["playbooks"] == [str(fleet / "site.yml")]
    assert data["run"]["started"] <= data["run"]["finished"]
    assert data["totals"]["nodes"] == 5
    assert (data["totals"]["ready"], data["totals"]["failed"], data["totals"]["unreachable"]) == (3, 1, 1)
    nodes = {n["name"]: n for n in data["nodes"]}
    assert sorted(nodes) == ["a1", "a2", "a3", "b1", "b2"]
    assert nodes["a3"]["state"] == "unreachable"
    assert nodes["a3"]["cluster"] == "site-a" and nodes["a3"]["role"] == "agent"
    assert nodes["a3"]["error"]["task"] == "Write the node's config"
    assert "port 1" in nodes["a3"]["error"]["message"]
    assert nodes["b1"]["state"] == "failed"
    assert nodes["b1"]["error"] == {"task": "Start the unit", "message": "unit failed on b1"}
    assert nodes["a2"]["state"] == "ready" and nodes["a2"]["error"] is None
    assert nodes["a1"]["changed"] == {"count": 1, "tasks": ["Write the node's config"]}
    assert nodes["a1"]["bytes_sent"] == 100
    assert "must-not-be-reported" not in (fleet / "out" / "report.json").read_text()
    assert (fleet / "out" / "retry").read_text() == "a3\nb1\n"
    assert f"--limit @{fleet / 'out' / 'retry'}" in first.stdout
    assert custom_stats(first.stdout) == {
        "edgefleet": {
            "schema_version": 1,
            "ok": False,
            "clusters": {
                "site-a": {"servers_ready": 1, "servers": 1, "agents_ready": 1, "agents": 2},
                "site-b": {"servers_ready": 0, "servers": 1, "agents_ready": 1, "agents": 1},
            },
            "retry": ["a3", "b1"],
        }
    }

    # The retry file as Ansible's --limit @file, once the two nodes are healthy again.
    second = run(
        fleet, "--limit", f"@{fleet / 'out' / 'retry'}", "-e", "a3_connection=local", "-e", '{"fail_hosts": []}'
    )
    assert second.returncode == 0, second.stdout + second.stderr
    table = summary(second.stdout)
    assert table[0].split()[-2:] == ["bytes", "sent"]
    assert "1/1 ready" in next(line for line in table if line.startswith("site-b"))
    data = report(fleet)
    assert {n["name"]: n["state"] for n in data["nodes"]} == {"a3": "ready", "b1": "ready"}
    assert data["retry"] == []
    assert not (fleet / "out" / "retry").exists()
    assert "removed the stale retry file" in second.stdout
    assert custom_stats(second.stdout)["edgefleet"]["retry"] == []


def test_a_run_that_loses_every_node_still_prints_the_table(fleet: Path) -> None:
    lost = run(fleet, "-e", "ansible_connection=ssh", "-e", "ansible_port=1")
    assert lost.returncode != 0
    table = summary(lost.stdout)
    site_a = next(line for line in table if line.startswith("site-a"))
    site_b = next(line for line in table if line.startswith("site-b"))
    assert "0/1 ready" in site_a and "0/2 ready" in site_a
    assert site_a.endswith("a1 (unreachable), a2 (unreachable), a3 (unreachable)")
    assert "0/1 ready" in site_b and site_b.endswith("b1 (unreachable), b2 (unreachable)")
    data = report(fleet)
    assert {n["state"] for n in data["nodes"]} == {"unreachable"}
    assert data["retry"] == ["a1", "a2", "a3", "b1", "b2"]
    assert (fleet / "out" / "retry").read_text() == "a1\na2\na3\nb1\nb2\n"


def test_no_table_without_fleet_hosts(fleet: Path) -> None:
    only_controller = run(fleet, "-i", "localhost,", "--limit", "localhost")
    assert only_controller.returncode == 0, only_controller.stdout + only_controller.stderr
    assert "the controller is no fleet node" in only_controller.stdout
    assert "EDGEFLEET SUMMARY" not in only_controller.stdout
    assert not (fleet / "out").exists()


WAIT_PLAYBOOK = """\
- name: Wait
  hosts: edgefleet
  gather_facts: false
  tasks:
    - name: Wait for the flag file
      ansible.builtin.command: "test -e {{ flag_dir }}/{{ inventory_hostname }}"
      register: waited
      until: waited.rc == 0
      retries: 3
      delay: 1
      changed_when: false
"""


def test_one_progress_line_names_the_nodes_still_waited_for(fleet: Path) -> None:
    flags = fleet / "flags"
    flags.mkdir()
    (flags / "a1").touch()
    (fleet / "wait.yml").write_text(WAIT_PLAYBOOK)
    proc = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(fleet / "test.fleet.yml"),
            str(fleet / "wait.yml"),
            "--limit",
            "a1,b1,b2",
            "-e",
            f"flag_dir={flags}",
        ],
        cwd=fleet,
        env={**os.environ, "ANSIBLE_CONFIG": str(fleet / "ansible.cfg"), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("edgefleet: waiting")]
    assert lines, proc.stdout
    # a1 found its flag at once: only b1 and b2 are named, with the time their remaining attempts may take
    # (retries: 3 is four attempts, one second apart; after the first, three seconds at most).
    assert "edgefleet: waiting for 2 node(s) at 'Wait for the flag file': b1, b2; at most 3 s left" in lines, lines
    assert all("a1" not in line for line in lines)
    # Not one line per node and attempt (Ansible's own FAILED - RETRYING lines do that).
    assert len(lines) < proc.stdout.count("FAILED - RETRYING"), proc.stdout
