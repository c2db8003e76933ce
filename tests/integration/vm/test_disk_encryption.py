"""Disk encryption on the lab's dm-crypt VM: real dm-crypt, a software TPM (swtpm) and Tang on loopback.

The playbooks are the Molecule-style ones in extensions/molecule/disk-encryption/; every run goes through
`ansible-playbook` with the ansible.posix.json callback, and the tests assert on its data (counts, task
results), not on the PLAY RECAP text. The "K3s" and "K0s" on the VM are the lab's stand-ins (a real
kube-apiserver on kine/SQLite behind a k3s/k0s-shaped CLI, installed by the collection's roles), NOT K3s/K0s.

One VM, one sequence. The stages are module-scoped fixtures, each requesting the stages whose state it
builds on:

    vm ─ scenario ─ prepared ─ converged ─ migrated ─ reran ─ rebooted ─ pcr7_extended
                          │                              └─ stolen ─ decommissioned
                          └─ (the refusals need only `prepared`)

The tests run in file order (the order of the old shell scenario): prepare, converge, migrate, re-runs,
refusals, recovery, each pin alone, a stolen agent's disk and its decommission (the site's Tang keys rotated),
reboot, PCR 7, the node's own crypto-erase, and the log scan last. A stage that fails
fails every test that needs it with the stage's own message ("stage 'converge' failed: ..."); `-k` on one
test runs just the stages it needs. Tests that change the node (the pins, the decommission) restore what a
later test needs or come after every test that needs it.

The `vm` fixture reuses a VM that is already running (`make test-vm-full` boots it and runs
tests/lab/vm/check.sh first) and then leaves it running; otherwise it boots one with tests/lab/vm/up.sh,
runs check.sh, and stops it at the end (EDGEFLEET_VM_KEEP=1 leaves it up). The sequence needs a fresh VM:
a reused one whose data disk is not blank fails at `converge` and says so. Needs root, the stand-in
bundle (`make controlplane-bundle`) and the VM image (`make lab-vm-image`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from vmlab import (
    CACHE,
    REPO,
    VM_INVENTORY,
    VM_NAME,
    Ansible,
    PlayRun,
    Rows,
    VmHost,
    check_vm,
    first_slot,
    qemu_running,
    secret_in,
    start_vm,
    stop_vm,
    wait_for,
)

pytestmark = pytest.mark.vm

SCENARIO = REPO / "extensions" / "molecule" / "disk-encryption"
ROWS_SH = SCENARIO / "files" / "rows.sh"
DEV = "/dev/disk/by-id/virtio-edgefleet-data"  # K3s: sss(TPM2 PCR 7, Tang), /var/lib/rancher
DEV2 = "/dev/disk/by-id/virtio-edgefleet-data2"  # K0s: TPM2 PCR 7, /var/lib/k0s
SPARES = {"spare1": "/dev/disk/by-id/virtio-edgefleet-spare1", "spare2": "/dev/disk/by-id/virtio-edgefleet-spare2"}
K3S_VOLUME, K0S_VOLUME = "edgefleet-data", "edgefleet-k0s-data"
K3S_DIR, K0S_DIR = "/var/lib/rancher", "/var/lib/k0s"
MARKER = "edgefleet-marker"
LOGS = CACHE / "vm" / "test-logs"
ALLOW_VARS = "edgefleet_disk_encryption_allow_format: true AND edgefleet_disk_encryption_format_device_id"


def log(msg: str) -> None:
    print(f"[disk-encryption] {msg}", flush=True)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """A stage of the sequence: any failed check inside fails the stage, and every test needing it, once."""
    t0 = time.monotonic()
    log(f"--- stage {name}")
    try:
        yield
    except (AssertionError, subprocess.SubprocessError, OSError) as exc:
        pytest.fail(f"stage {name!r} failed: {exc}", pytrace=False)
    log(f"--- stage {name}: done in {time.monotonic() - t0:.0f} s")


# --------------------------------------------------------------------------- the node and the controller


@pytest.fixture(scope="module")
def vm() -> Iterator[VmHost]:
    host = VmHost()
    owned = not qemu_running()
    try:
        up = start_vm()
        if up.returncode != 0:
            pytest.fail(f"the VM did not come up (tests/lab/vm/up.sh):\n{up.stderr[-3000:]}", pytrace=False)
        log(up.stderr.strip().splitlines()[-1] if up.stderr.strip() else "VM up")
        if owned:
            check = check_vm()
            if check.returncode != 0:
                pytest.fail(f"tests/lab/vm/check.sh failed:\n{check.stderr[-3000:]}", pytrace=False)
        if not host.ok("true"):
            pytest.fail("no ssh to the VM on 127.0.0.1", pytrace=False)
        yield host
    finally:
        if owned and not os.environ.get("EDGEFLEET_VM_KEEP"):
            stop_vm()


@dataclass
class Scenario:
    host: VmHost
    ansible: Ansible
    escrow: Path
    logs: Path

    def escrow_of(self, volume: str) -> Path:
        return self.escrow / f"{VM_NAME}.{volume}.recovery.vault"

    def passphrase(self, volume: str) -> str:
        """The escrowed recovery passphrase (a secret: never in a message or an assert's operands)."""
        return self.ansible.vault_view(self.escrow_of(volume)).replace("\n", "")

    def opens(self, volume: str, device: str) -> bool:
        """The volume's recovery passphrase from the vault opens `device` (stdin only, --test-passphrase)."""
        return self.host.ok(
            f"sudo cryptsetup open --test-passphrase --key-file=- {device}", stdin=self.passphrase(volume)
        )

    def rows(self, dist: str) -> Rows:
        configmaps, digest, kine = self.host.script(ROWS_SH, dist, "count").split()
        return Rows(int(configmaps), digest, int(kine))

    def api_ready(self, dist: str) -> bool:
        """The stand-in's API answers /readyz (after a restart or a reboot; TCG is slow)."""
        return wait_for(lambda: self.host.ok(f"sudo /usr/local/bin/{dist} kubectl get --raw /readyz"), 360, 4)

    def marker_sum(self, directory: str) -> str:
        return self.host.out(f"sudo sha256sum {directory}/{MARKER}").split()[0]

    def spare_sum(self, spare: str) -> str:
        """spare1: sha256 of the file on its ext4; spare2: sha256 of its first 16 MiB (the LUKS header area)."""
        if spare == "spare1":
            script = (
                'set -e; m=$(mktemp -d); trap \'umount "$m" 2>/dev/null; rmdir "$m"\' EXIT; '
                f'mount -o ro {SPARES["spare1"]} "$m"; sha256sum "$m/precious.bin" | cut -d" " -f1'
            )
        else:
            script = f'set -o pipefail; head -c 16777216 {SPARES["spare2"]} | sha256sum | cut -d" " -f1'
        proc = self.host.run("sudo bash -s", stdin=script)
        return proc.stdout.strip() if proc.returncode == 0 else f"<unreadable: exit {proc.returncode}>"


@pytest.fixture(scope="module")
def scenario(vm: VmHost, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    failed_before = request.session.testsfailed
    work = Path(tempfile.mkdtemp(prefix="edgefleet-disk-encryption."))
    # Every run's JSON result and stderr: kept when a test failed, removed when all passed. The vault
    # secret and the escrow stay in `work`, which is always removed.
    logs = LOGS
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(mode=0o700, parents=True)
    # The vault secret of this test run only (the user's own vault secret in real use).
    vault_pass = work / "vault-pass"
    vault_pass.write_text(secrets.token_urlsafe(32) + "\n")
    vault_pass.chmod(0o600)
    env = {"EDGEFLEET_ESCROW_DIR": str(work / "escrow"), "ANSIBLE_VAULT_PASSWORD_FILE": str(vault_pass)}
    try:
        yield Scenario(vm, Ansible(logs, env), work / "escrow", logs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if request.session.testsfailed > failed_before or os.environ.get("EDGEFLEET_VM_KEEP_LOGS"):
            log(f"logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)


def _recap(run: PlayRun) -> str:
    s = run.stats
    return (
        f"{run.name}: ok={s.get('ok')} changed={s.get('changed')} failed={s.get('failures')} skipped={s.get('skipped')}"
    )


# --------------------------------------------------------------------------- stages


@dataclass
class Prepared:
    k0s_rows: Rows
    spare_sums: dict[str, str]


@pytest.fixture(scope="module")
def prepared(scenario: Scenario) -> Prepared:
    """Foreign disks (ext4 with a file; a LUKS header not ours), Tang on loopback, and the K0s stand-in
    running on SQLite on the PLAIN root disk with 200 ConfigMaps."""
    host = scenario.host
    with stage("prepare"):
        run = scenario.ansible.play("prepare", SCENARIO / "prepare.yml")
        assert run.rc == 0, run.explain()
        log(_recap(run))
        assert host.mounted_from(K0S_DIR) == "", f"{K0S_DIR} is a mount point before migrate"
        assert host.is_active("k0scontroller"), "the K0s stand-in is not running"
        # edgefleet_k0s_api_port: 6444 (vars/k0s.yml) must be where it listens, leaving 6443 to K3s.
        listeners = host.run("sudo ss -Hltnp 'sport = :6444'").stdout
        assert "kube-apiserver" in listeners, f"the K0s API server does not listen on 6444: {listeners!r}"
        t0 = time.monotonic()
        host.script(ROWS_SH, "k0s", "create", "200")
        rows = scenario.rows("k0s")
        log(f"200 ConfigMaps written and counted in {time.monotonic() - t0:.0f} s")
        assert rows.configmaps == 200 and rows.kine == 200, f"K0s rows after creating 200 ConfigMaps: {rows}"
        sums = {spare: scenario.spare_sum(spare) for spare in SPARES}
        assert all(len(s) == 64 for s in sums.values()), f"the foreign disks cannot be read: {sums}"
        log(f"K0s stand-in on the plain disk, running: {rows}")
    return Prepared(rows, sums)


@dataclass
class Converged:
    run: PlayRun
    k3s_rows: Rows
    luks_uuid: str


@pytest.fixture(scope="module")
def converged(scenario: Scenario, prepared: Prepared) -> Converged:
    """A fresh node in site.yml's order (converge.yml, -vvv): encrypt the blank disk, install K3s onto it,
    write 300 ConfigMaps."""
    host = scenario.host
    with stage("converge"):
        blank = host.run(f"sudo blkid -p {DEV}")
        assert blank.returncode != 0, (
            f"the data disk is not blank ({blank.stdout.strip()}): the sequence needs a fresh VM "
            "(make lab-vm-down, then run again)"
        )
        run = scenario.ansible.play("converge", SCENARIO / "converge.yml", verbose=3)
        assert run.rc == 0, run.explain()
        log(_recap(run))
        assert host.is_active("k3s"), "K3s is not running"
        host.script(ROWS_SH, "k3s", "create", "300")
        rows = scenario.rows("k3s")
        assert rows.configmaps == 300 and rows.kine == 300, f"K3s rows after creating 300 ConfigMaps: {rows}"
        uuid = host.out(f"sudo cryptsetup luksUUID {DEV}")
        log(f"K3s stand-in installed onto the encrypted volume (LUKS UUID {uuid}): {rows}")
    return Converged(run, rows, uuid)


@dataclass
class Migrated:
    run: PlayRun


@pytest.fixture(scope="module")
def migrated(scenario: Scenario, converged: Converged) -> Migrated:
    """A node that gets encryption later (migrate.yml, -vvv): the running K0s datastore moves onto its own
    volume (TPM2 on PCR 7)."""
    with stage("migrate"):
        run = scenario.ansible.play("migrate", SCENARIO / "migrate.yml", verbose=3)
        assert run.rc == 0, run.explain()
        log(_recap(run))
        assert scenario.api_ready("k0s"), "the K0s API did not come back after the move"
    return Migrated(run)


@dataclass
class Reran:
    runs: list[PlayRun]
    markers: dict[str, str]
    k0s_uuid: str


@pytest.fixture(scope="module")
def reran(scenario: Scenario, converged: Converged, migrated: Migrated) -> Reran:
    """Marker files on both volumes, then 3 re-runs: converge + migrate whole, then reencrypt.yml twice."""
    host = scenario.host
    with stage("re-runs"):
        markers = {}
        for d in (K3S_DIR, K0S_DIR):
            host.out(f"sudo bash -c 'head -c 65536 /dev/urandom > {d}/{MARKER}'")
            markers[d] = scenario.marker_sum(d)
        k0s_uuid = host.out(f"sudo cryptsetup luksUUID {DEV2}")
        runs = []
        for i in (1, 2, 3):
            plays = (SCENARIO / "converge.yml", SCENARIO / "migrate.yml") if i == 1 else (SCENARIO / "reencrypt.yml",)
            run = scenario.ansible.play(f"rerun{i}", *plays)
            assert run.rc == 0, run.explain()
            log(_recap(run))
            runs.append(run)
    return Reran(runs, markers, k0s_uuid)


def _boot_id(host: VmHost) -> str:
    return host.run("cat /proc/sys/kernel/random/boot_id").stdout.strip()


@pytest.fixture(scope="module")
def rebooted(scenario: Scenario, reran: Reran) -> None:
    """Tang switched off, the VM rebooted; nothing typed. Waits for both volumes to be mounted (nofail)."""
    host = scenario.host
    with stage("reboot"):
        before = _boot_id(host)
        # The connection may hang while sshd goes down.
        with contextlib.suppress(subprocess.TimeoutExpired):
            host.run("sudo systemctl disable --now tangd.socket >/dev/null 2>&1; sudo systemctl reboot", timeout=60)
        assert wait_for(lambda: _boot_id(host) not in ("", before), 420, 5), "no ssh into a new boot after the reboot"
        assert not host.is_active("tangd.socket"), "Tang is running; the reboot test needs it off"
        # crypttab/fstab say nofail: sshd may answer before clevis has unlocked the volumes.
        mounted = wait_for(
            lambda: (
                host.mounted_from(K3S_DIR) == f"/dev/mapper/{K3S_VOLUME}"
                and host.mounted_from(K0S_DIR) == f"/dev/mapper/{K0S_VOLUME}"
            ),
            240,
            2,
        )
        log(f"rebooted (boot id {_boot_id(host)[:8]}...), both volumes mounted: {mounted}")
        if not mounted:
            # What the unlock did at boot, for the failing tests' reader (CI keeps only the log).
            log("not mounted after the reboot; this boot's unlock journal:\n" + _unlock_journal(host, 60))


def _unlock_journal(host: VmHost, lines: int) -> str:
    return host.run(
        "sudo journalctl -b --no-pager -o short-monotonic -u 'systemd-cryptsetup@*' -u 'clevis-luks-askpass*' "
        f"-u var-lib-rancher.mount -u var-lib-k0s.mount -u k3s -u k0scontroller | tail -n {lines}; "
        "sudo systemctl list-jobs --no-pager; lsblk -o NAME,TYPE,MOUNTPOINTS"
    ).stdout.strip()


@pytest.fixture(scope="module")
def pcr7_extended(scenario: Scenario, rebooted: None) -> None:
    """PCR 7 extended by hand (what a changed Secure Boot state does), Tang still off after the reboot."""
    digest = hashlib.sha256(b"edgefleet: a changed boot chain").hexdigest()
    with stage("PCR 7"):
        scenario.host.out(f"sudo tpm2_pcrextend 7:sha256={digest}")


# --------------------------------------------------------------------------- tests, in sequence order


def test_k0s_runs_on_sqlite_on_the_plain_root_disk_before_the_move(scenario: Scenario, prepared: Prepared) -> None:
    assert scenario.host.mounted_from(K0S_DIR) == ""
    assert scenario.host.is_active("k0scontroller")
    assert prepared.k0s_rows.configmaps == prepared.k0s_rows.kine == 200


def test_blank_data_disk_is_encrypted_luks2_and_mounted(scenario: Scenario, converged: Converged) -> None:
    host = scenario.host
    guards = converged.run.by_action("edgefleet.k8s.luks_guard")
    assert [g.result.get("found") for g in guards] == ["no signature (blank)"], "the guard did not see a blank disk"
    assert host.mounted_from(K3S_DIR) == f"/dev/mapper/{K3S_VOLUME}", f"{K3S_DIR} is not mounted from the volume"
    assert "type:    LUKS2" in host.out(f"sudo cryptsetup status {K3S_VOLUME}"), "the K3s volume is not LUKS2"


def test_k3s_runs_with_its_sqlite_datastore_on_the_volume(scenario: Scenario, converged: Converged) -> None:
    host = scenario.host
    source = host.out("sudo findmnt -n -o SOURCE -T /var/lib/rancher/k3s/server/db/state.db")
    assert source == f"/dev/mapper/{K3S_VOLUME}", "the K3s SQLite datastore is not on the encrypted volume"
    assert host.is_active("k3s"), "K3s is not running"
    assert converged.k3s_rows.configmaps == converged.k3s_rows.kine == 300


def test_molecule_verify_passes_on_the_encrypted_node(scenario: Scenario, converged: Converged) -> None:
    run = scenario.ansible.play("verify", SCENARIO / "verify.yml")
    assert run.rc == 0, run.explain()
    asserts = run.by_action("ansible.builtin.assert")
    assert len(asserts) >= 6 and all(a.msg == "All assertions passed" for a in asserts), [a.msg for a in asserts]
    assert run.changed == 0, run.changed_tasks()


def test_live_k0s_datastore_moved_onto_its_volume_without_loss(
    scenario: Scenario, prepared: Prepared, migrated: Migrated
) -> None:
    host = scenario.host
    moves = migrated.run.by_action("edgefleet.k8s.data_dir_migrate")
    assert any(m.result.get("migrated") is True for m in moves), "the K0s data was not moved"
    assert host.mounted_from(K0S_DIR) == f"/dev/mapper/{K0S_VOLUME}", f"{K0S_DIR} is not mounted from its volume"
    assert host.is_active("k0scontroller"), "k0scontroller was not started again"
    after = scenario.rows("k0s")
    log(f"migration: K0s rows {prepared.k0s_rows} -> {after}")
    assert after == prepared.k0s_rows, f"K0s rows before the move: {prepared.k0s_rows}, after: {after}"
    assert host.ok("sudo test ! -e /var/lib/edgefleet/data-dir-migrate/var-lib-k0s.json"), "the move journal is left"


@pytest.mark.parametrize("i", [1, 2, 3], ids=["converge+migrate", "reencrypt-1", "reencrypt-2"])
def test_rerun_changes_nothing(reran: Reran, i: int) -> None:
    run = reran.runs[i - 1]
    assert run.failures == 0, run.explain()
    assert run.changed == 0, f"re-run {i}: changed={run.changed}: {run.changed_tasks()}"


def test_reruns_do_not_reformat_either_volume(scenario: Scenario, converged: Converged, reran: Reran) -> None:
    for d, before in reran.markers.items():
        assert scenario.marker_sum(d) == before, f"the marker on {d} changed across the re-runs"
    # The guard found our own header each time (a reformat would also make a new LUKS UUID).
    for i, run in enumerate(reran.runs, 1):
        expected = [converged.luks_uuid, reran.k0s_uuid] if i == 1 else [converged.luks_uuid]
        found = [g.result.get("luks_uuid") for g in run.by_action("edgefleet.k8s.luks_guard")]
        assert found == expected, f"re-run {i}: the guard did not reuse the existing volumes: {found}"
    assert scenario.host.out(f"sudo cryptsetup luksUUID {DEV}") == converged.luks_uuid
    assert scenario.host.out(f"sudo cryptsetup luksUUID {DEV2}") == reran.k0s_uuid
    log(f"markers equal after 3 re-runs: { {d: s[:16] for d, s in reran.markers.items()} }")


@pytest.mark.parametrize("spare", ["spare1", "spare2"], ids=["ext4-with-a-file", "foreign-luks-header"])
def test_refuses_a_disk_it_did_not_create(scenario: Scenario, prepared: Prepared, spare: str) -> None:
    run = scenario.ansible.play(
        f"refuse-{spare}",
        SCENARIO / "converge.yml",
        extra_vars={"disk_encryption_test_device": SPARES[spare], "edgefleet_disk_encryption_name": f"refusal-{spare}"},
    )
    assert run.rc != 0, f"the role formatted or accepted {spare}"
    failed = run.failed_tasks()
    assert [f.action for f in failed] == ["edgefleet.k8s.luks_guard"], (
        f"not refused by the safety gate: {run.explain()}"
    )
    msg = failed[0].msg
    assert "refusing to" in msg, f"no refusal message for {spare}: {msg}"
    assert ALLOW_VARS in msg, f"the refusal for {spare} does not name the two variables: {msg}"
    assert f"virtio-edgefleet-{spare} (" in msg and ": holds " in msg, f"the refusal does not name the device: {msg}"
    assert run.changed == 0, f"the refused run changed: {run.changed_tasks()}"
    # Both foreign disks, each time: a refusal of one must not touch the other either.
    for other, before in prepared.spare_sums.items():
        assert scenario.spare_sum(other) == before, f"the content of {other} changed"
    log(f"refused {spare}, content unchanged ({prepared.spare_sums[spare][:12]}): {msg[msg.find('holds') :][:90]}")


@pytest.mark.parametrize(("volume", "device"), [(K3S_VOLUME, DEV), (K0S_VOLUME, DEV2)], ids=["k3s", "k0s"])
def test_recovery_passphrase_from_the_vault_opens_the_volume(
    scenario: Scenario, converged: Converged, migrated: Migrated, volume: str, device: str
) -> None:
    escrow = scenario.escrow_of(volume)
    assert oct(escrow.stat().st_mode & 0o777) == "0o600", f"{escrow}: mode is not 0600"
    assert escrow.read_bytes()[:14] == b"$ANSIBLE_VAULT", f"{escrow} is not vault-encrypted"
    assert scenario.opens(volume, device), f"the escrowed recovery passphrase does not open {volume}"


def _sss_slot(host: VmHost) -> str:
    slot = first_slot(host.out(f"sudo clevis luks list -d {DEV}"), "sss")
    assert slot, "no sss binding on the K3s volume"
    return slot


def test_sss_slot_unlocks_with_the_tpm_alone(scenario: Scenario, converged: Converged) -> None:
    host = scenario.host
    slot = _sss_slot(host)
    log(host.run(f"sudo clevis luks list -d {DEV}; sudo clevis luks list -d {DEV2}").stdout.strip())
    try:
        ok = host.ok(
            "sudo systemctl stop tangd.socket && ! systemctl is-active --quiet tangd.socket && "
            f"sudo clevis luks pass -d {DEV} -s {slot} | sudo cryptsetup open --test-passphrase --key-file=- {DEV}"
        )
    finally:
        host.run("sudo systemctl start tangd.socket")
    assert ok, "sss did not unlock with the TPM2 alone (Tang stopped)"


def test_sss_slot_unlocks_with_tang_alone(scenario: Scenario, converged: Converged) -> None:
    host = scenario.host
    slot = _sss_slot(host)
    # The tpm2 pin is made unreachable; its own errors go to /dev/null (the expected failure of that pin).
    no_tpm = f"sudo env TPM2TOOLS_TCTI=device:/dev/null clevis luks pass -d {DEV} -s {slot} 2>/dev/null"
    opens = f"sudo cryptsetup open --test-passphrase --key-file=- {DEV}"
    try:
        blocked = host.ok(f"sudo systemctl stop tangd.socket && {no_tpm} | {opens}")
    finally:
        host.run("sudo systemctl start tangd.socket")
    assert not blocked, "the key came out with Tang stopped: the TPM was still reachable for the tpm2 pin"
    assert host.ok(f"{no_tpm} | {opens}"), "sss did not unlock with Tang alone (TPM unreachable)"


# --------------------------------------------------------------------------- a stolen agent's disk

THIEF = "vm-thief"  # an agent of the VM's cluster that is gone: nothing answers at its address
THIEF_IMG = "/var/tmp/edgefleet-thief.img"  # its data disk, bound as the node's is (sss: TPM2 PCR 7, Tang)
THIEF_COPY = "/var/tmp/edgefleet-thief-copy.img"  # what the thief took away: a byte copy
# The copy's clevis slot with the TPM unreachable (a thief has the disk, not the node's TPM), then the key it
# yields tried on the copy. $1: the copy's loop device.
THIEF_UNLOCK = (
    'slot=$(clevis luks list -d "$1" | sed -n "s/^\\([0-9]*\\): sss .*/\\1/p" | head -n1); [ -n "$slot" ] || exit 3; '
    'env TPM2TOOLS_TCTI=device:/dev/null clevis luks pass -d "$1" -s "$slot" 2>/dev/null '
    '| cryptsetup open --test-passphrase --key-file=- "$1"'
)


@dataclass
class Stolen:
    unlocked_before: bool


def _with_loop(host: VmHost, image: str, script: str) -> tuple[bool, str]:
    """Run `script` ($1: a loop device over `image`), detaching the loop device afterwards."""
    body = (
        f"set -u; loop=$(losetup -f --show {image}) || exit 90; trap 'losetup -d \"$loop\"' EXIT; "
        f'set -- "$loop"; {script}'
    )
    proc = host.run("sudo bash -s", stdin=body)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


@pytest.fixture(scope="module")
def stolen(scenario: Scenario, reran: Reran) -> Stolen:
    """The disk of an agent of the VM's cluster, bound to the site's Tang server as the VM's own volume is
    (sss: TPM2 on PCR 7, or Tang), and a byte copy of it, as a thief would take it. The agent itself is gone."""
    host = scenario.host
    with stage("stolen disk"):
        # The agent's own passphrase exists only inside this script (a thief never had it).
        setup = (
            f"set -eu; rm -f {THIEF_IMG} {THIEF_COPY}; truncate -s 40M {THIEF_IMG}; "
            "key=$(head -c 32 /dev/urandom | base64); "
            f'printf %s "$key" | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 '
            f"--key-file=- {THIEF_IMG}; "
            f"loop=$(losetup -f --show {THIEF_IMG}); trap 'losetup -d \"$loop\"' EXIT; "
            'printf %s "$key" | clevis luks bind -y -k - -d "$loop" sss '
            '\'{"t":1,"pins":{"tpm2":{"pcr_ids":"7"},"tang":[{"url":"http://127.0.0.1"}]}}\'; '
            f"cp {THIEF_IMG} {THIEF_COPY}"
        )
        proc = host.run("sudo bash -s", stdin=setup)
        assert proc.returncode == 0, f"the stolen agent's disk could not be made: {proc.stderr.strip()[-1500:]}"
        # The control: before the decommission, the copy unlocks through Tang with no TPM.
        unlocked, out = _with_loop(host, THIEF_COPY, THIEF_UNLOCK)
        log(f"stolen disk copied; unlocks through Tang without the TPM before the decommission: {unlocked}")
        if not unlocked:
            log(f"the copy's unlock before the decommission: {out[-800:]}")
    return Stolen(unlocked)


@dataclass
class Decommissioned:
    run: PlayRun
    evidence: list[Path]
    keys_before: list[str]
    keys_after: list[str]


def _decommission_inventory(work: Path) -> Path:
    """The VM's cluster as a fleet inventory would give it, with the stolen agent added: the VM's inventory
    host and the scenario's vars, the agent at an address where nothing answers, the VM as the site's Tang
    server."""
    vm_hosts = yaml.safe_load(VM_INVENTORY.read_text())["all"]["children"]["edgefleet_vm"]["hosts"]
    cluster: dict[str, object] = {}
    for name in ("k3s.yml", "encryption.yml", "k3s-volume.yml"):
        cluster.update(yaml.safe_load((SCENARIO / "vars" / name).read_text()))
    cluster.update(
        {
            "edgefleet_cluster_agents": [THIEF],
            "edgefleet_disk_encryption_tang_host": VM_NAME,
            "edgefleet_gitops_engine": "none",
            "edgefleet_lifecycle_evidence_dir": str(work / "evidence"),
        }
    )
    thief = {
        "ansible_host": "127.0.0.1",
        "ansible_port": 9,
        "ansible_user": "edge",
        "ansible_ssh_timeout": 5,
        "edgefleet_node_role": "agent",
    }
    inventory = {"all": {"vars": cluster, "hosts": {**vm_hosts, THIEF: thief}}}
    path = work / "decommission-inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def _tang_keys(host: VmHost) -> list[str]:
    """The key files the VM's Tang server advertises."""
    return sorted(host.out("sudo find /var/lib/tang -maxdepth 1 -name '*.jwk' ! -name '.*' -printf '%f\\n'").split())


@pytest.fixture(scope="module")
def decommissioned(scenario: Scenario, stolen: Stolen, tmp_path_factory: pytest.TempPathFactory) -> Decommissioned:
    """edgefleet.k8s.decommission for the stolen agent, which does not answer: through the rest of its
    cluster (the VM), the join token rotated and the site's Tang keys rotated, the VM's volume rebound first."""
    host = scenario.host
    work = tmp_path_factory.mktemp("decommission")
    with stage("decommission of the stolen agent"):
        keys_before = _tang_keys(host)
        ansible = Ansible(
            scenario.logs,
            {k: v for k, v in scenario.ansible.env.items() if k.startswith(("EDGE", "ANSIBLE_VAULT"))},
            inventory=_decommission_inventory(work),
        )
        run = ansible.play(
            "decommission-stolen",
            REPO / "playbooks" / "decommission.yml",
            extra_vars={"edgefleet_lifecycle_node": THIEF, "edgefleet_lifecycle_confirm": THIEF},
        )
        assert run.rc == 0, run.explain()
        log(_recap(run))
        evidence = sorted((work / "evidence").glob("*.json"))
        keys_after = _tang_keys(host)
        log(f"Tang keys advertised: before {keys_before}, after {keys_after}")
    return Decommissioned(run, evidence, keys_before, keys_after)


def test_a_copy_of_a_stolen_disk_no_longer_unlocks_through_tang(
    scenario: Scenario, stolen: Stolen, decommissioned: Decommissioned
) -> None:
    assert stolen.unlocked_before, "the control failed: the copy did not unlock through Tang before the decommission"
    assert decommissioned.keys_before and decommissioned.keys_after, "the Tang server advertises no key"
    assert not set(decommissioned.keys_before) & set(decommissioned.keys_after), (
        f"old Tang keys are still advertised: {decommissioned.keys_before} -> {decommissioned.keys_after}"
    )
    hidden = scenario.host.out("sudo find /var/lib/tang -maxdepth 1 -name '.*.jwk' -printf '%f\\n'")
    assert hidden == "", f"the old keys were hidden but not retired: {hidden}"
    unlocked, out = _with_loop(scenario.host, THIEF_COPY, THIEF_UNLOCK)
    assert not unlocked, f"the stolen disk's copy still unlocks through Tang after the decommission: {out[-500:]}"


def test_the_remaining_node_unlocks_through_the_new_tang_keys(
    scenario: Scenario, converged: Converged, decommissioned: Decommissioned
) -> None:
    """The VM's own volume (sss) was rebound before the old keys went: its Tang path alone (TPM unreachable)
    still yields the key; the reboot tests below show it unlocking at boot."""
    host = scenario.host
    slot = _sss_slot(host)
    no_tpm = f"sudo env TPM2TOOLS_TCTI=device:/dev/null clevis luks pass -d {DEV} -s {slot} 2>/dev/null"
    assert host.ok(f"{no_tpm} | sudo cryptsetup open --test-passphrase --key-file=- {DEV}"), (
        "the remaining node's volume no longer unlocks through Tang after the rotation"
    )
    assert host.ok(f"sudo test -e /var/lib/edgefleet/tang-rebinds/decommission-{THIEF}"), "the VM was not rebound"


def test_the_recovery_passphrase_still_opens_the_remaining_node_after_the_rotation(
    scenario: Scenario, decommissioned: Decommissioned
) -> None:
    assert scenario.opens(K3S_VOLUME, DEV), "the escrowed recovery passphrase no longer opens the K3s volume"


def test_the_decommission_evidence_names_the_tang_rotation(decommissioned: Decommissioned) -> None:
    assert len(decommissioned.evidence) == 1, decommissioned.evidence
    record = yaml.safe_load(decommissioned.evidence[0].read_text())
    assert record["node"] == THIEF and record["node_reachable"] is False, record
    tang = record["tang"]
    assert tang["rotated"] is True and sorted(tang["old_keys"]) == decommissioned.keys_before, tang
    assert sorted(tang["new_keys"]) == decommissioned.keys_after, tang


def test_volumes_unlock_at_boot_by_the_tpm_with_tang_off(scenario: Scenario, rebooted: None) -> None:
    host = scenario.host
    assert not host.is_active("tangd.socket"), "Tang is running; this test needs it off"
    for volume in (K3S_VOLUME, K0S_VOLUME):
        assert "type:    LUKS2" in host.run(f"sudo cryptsetup status {volume}").stdout, (
            f"{volume} is not unlocked; the boot's unlock journal:\n{_unlock_journal(host, 40)}"
        )
    assert host.mounted_from(K3S_DIR) == f"/dev/mapper/{K3S_VOLUME}", f"{K3S_DIR} is not mounted after the reboot"
    assert host.mounted_from(K0S_DIR) == f"/dev/mapper/{K0S_VOLUME}", f"{K0S_DIR} is not mounted after the reboot"
    journal = host.run(
        "sudo journalctl -b -u 'systemd-cryptsetup@*' -u 'clevis-luks-askpass*' --no-pager -o cat"
    ).stdout.strip()
    log("boot journal (cryptsetup, clevis): " + " | ".join(journal.splitlines()[-4:]))


def test_rows_and_markers_survive_the_reboot(
    scenario: Scenario, prepared: Prepared, converged: Converged, reran: Reran, rebooted: None
) -> None:
    assert scenario.api_ready("k3s"), "the K3s API did not come back after the reboot"
    assert scenario.api_ready("k0s"), "the K0s API did not come back after the reboot"
    k3s, k0s = scenario.rows("k3s"), scenario.rows("k0s")
    log(f"after the reboot: K3s {k3s}; K0s {k0s}")
    assert k3s == converged.k3s_rows, f"K3s rows before the reboot: {converged.k3s_rows}, after: {k3s}"
    assert k0s == prepared.k0s_rows, f"K0s rows before the reboot: {prepared.k0s_rows}, after: {k0s}"
    for d, before in reran.markers.items():
        assert scenario.marker_sum(d) == before, f"the marker on {d} changed across the reboot"


def test_pcr7_change_stops_the_tpm_unsealing(scenario: Scenario, migrated: Migrated, pcr7_extended: None) -> None:
    host = scenario.host
    assert not host.is_active("tangd.socket"), "Tang is running; this test needs it off"
    k0s_slot = first_slot(host.out(f"sudo clevis luks list -d {DEV2}"), "tpm2")
    assert k0s_slot, "no tpm2 binding on the K0s volume"
    assert not host.ok(f"sudo clevis luks pass -d {DEV2} -s {k0s_slot} >/dev/null 2>&1"), (
        "the TPM2 binding unsealed after PCR 7 changed"
    )
    assert not host.ok(f"sudo clevis luks pass -d {DEV} -s {_sss_slot(host)} >/dev/null 2>&1"), (
        "sss unsealed with PCR 7 changed and Tang off"
    )


def test_sss_volume_still_opens_through_tang_after_pcr7_change(scenario: Scenario, pcr7_extended: None) -> None:
    host = scenario.host
    slot = _sss_slot(host)
    assert host.ok(
        f"sudo systemctl start tangd.socket; sudo clevis luks pass -d {DEV} -s {slot} 2>/dev/null "
        f"| sudo cryptsetup open --test-passphrase --key-file=- {DEV}"
    ), "with PCR 7 changed, the sss binding no longer unlocks through Tang"


def test_decommission_is_refused_for_a_node_not_named(scenario: Scenario, converged: Converged) -> None:
    run = scenario.ansible.play(
        "decommission-refused",
        SCENARIO / "decommission.yml",
        extra_vars={"edgefleet_disk_encryption_decommission_node": "some-other-node"},
    )
    assert run.rc != 0, "decommission ran for a node that was not named"
    assert any("refusing to crypto-erase" in f.msg for f in run.failed_tasks()), run.explain()
    assert scenario.host.ok(f"sudo cryptsetup isLuks {DEV}"), "the unnamed-node decommission touched the volume"


def test_decommission_crypto_erases_every_key_slot(scenario: Scenario, converged: Converged) -> None:
    run = scenario.ansible.play(
        "decommission",
        SCENARIO / "decommission.yml",
        extra_vars={"edgefleet_disk_encryption_decommission_node": VM_NAME},
    )
    assert run.rc == 0, run.explain()
    assert not scenario.opens(K3S_VOLUME, DEV), "the recovery passphrase still opens the volume after crypto-erase"
    dump = scenario.host.run(f"sudo cryptsetup luksDump {DEV}").stdout
    keyslots = dump.partition("Keyslots:")[2].partition("Tokens:")[0]
    assert not re.search(r"^  [0-9]+: luks2", keyslots, re.MULTILINE), (
        f"key slots remain after crypto-erase:\n{keyslots}"
    )


def test_molecule_verify_fails_once_the_volume_is_erased(scenario: Scenario, converged: Converged) -> None:
    run = scenario.ansible.play("verify-after-decommission", SCENARIO / "verify.yml")
    assert run.rc != 0, "verify.yml passed on a crypto-erased, closed volume"
    failed = run.failed_tasks()
    assert [f.action for f in failed] == ["ansible.builtin.assert"], run.explain()
    # A condition that evaluated to false, not an assert that could not be evaluated at all.
    assert failed[0].result.get("evaluated_to") is False, run.explain()
    log(f"verify.yml after the decommission: {failed[0].task!r} failed: {failed[0].msg}")


def test_no_recovery_passphrase_in_any_log(scenario: Scenario, converged: Converged, migrated: Migrated) -> None:
    passphrases = [scenario.passphrase(v) for v in (K3S_VOLUME, K0S_VOLUME)]
    if any(len(p) < 20 for p in passphrases):
        pytest.fail("an escrowed passphrase is shorter than 20 characters", pytrace=False)
    logs = sorted(scenario.logs.iterdir())
    leaked = [f.name for f in logs if secret_in(f.read_text(errors="replace"), passphrases)]
    passphrases.clear()
    if leaked:
        pytest.fail(f"a recovery passphrase appears in: {', '.join(leaked)}", pytrace=False)
    # The claim is about the verbose logs: make sure converge and migrate really ran at -vvv.
    not_verbose = [
        name
        for name in ("converge", "migrate")
        if "ESTABLISH SSH CONNECTION" not in (scenario.logs / f"{name}.stderr.log").read_text(errors="replace")
    ]
    assert not not_verbose, f"not -vvv logs: {not_verbose}"
    lines = sum(len(f.read_text(errors="replace").splitlines()) for f in logs)
    log(f"no passphrase in {len(logs)} logs, {lines} lines (converge and migrate at -vvv)")
