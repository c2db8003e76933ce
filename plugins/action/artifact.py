# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action side of edgefleet.k8s.artifact: verify on the controller, send what differs, verify on the node."""

from __future__ import annotations

import os
import shutil
from typing import Any

from ansible.module_utils.urls import open_url
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.edgefleet.k8s.plugins.module_utils._artifacts import bundle as artifacts
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import sha256_file
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.hash_record import HashRecord

display = Display()

_MODULE = "edgefleet.k8s.artifact"

ARGUMENT_SPEC: dict[str, Any] = artifacts.argument_spec(on_node=False)


def _fetch(url: str, dest: str) -> None:
    """Download one URL to a local file (controller side)."""
    if url.startswith("file://"):
        shutil.copyfile(url[len("file://") :], dest)
        return
    try:
        response = open_url(url, timeout=60, follow_redirects="safe")
    except Exception as exc:  # open_url raises several unrelated types (HTTPError, URLError, SSLError...)
        raise OSError(str(exc)) from exc
    with open(dest, "wb") as handle:
        shutil.copyfileobj(response, handle, 1024 * 1024)


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible is untyped here
    # False on purpose: with True, ActionBase.run() makes the remote temp dir before anything else,
    # i.e. it touches the node before the bundle is verified. run() makes it only when a file is sent.
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(changed=False, bytes_sent=0, bytes_to_send=0, hashed_on_node=0, files=[], not_in_bundle=[])

        try:
            plan = self._verify_on_controller(args)
        except artifacts.BundleError as exc:
            result["failed"] = True
            result["msg"] = (
                "air-gap bundle verification failed on the controller; nothing was sent to any node:\n"
                + "\n".join(f"- {p}" for p in exc.problems)
            )
            return result

        result["source"] = plan.source
        result["not_in_bundle"] = plan.skipped
        result["binary_path"] = os.path.join(args["bin_dir"], args["distribution"])
        result["staging_dir"] = artifacts.staging_dir_for(args["staging_root"], args["distribution"], args["version"])
        if args["verify_only"]:
            result["files"] = [
                {"name": f.name, "kind": f.kind, "sha256": f.sha256, "size": f.size, "verified": True}
                for f in plan.files
            ]
            result["msg"] = f"bundle {plan.source} verified on the controller ({len(plan.files)} files)"
            return result

        module_files = [f.as_module_arg() for f in plan.files]
        if not args["install"]:
            # Stage only (upgrade prestage): nothing is installed, so the running service and its binary stay.
            module_files = [{**f, "install_path": None} for f in module_files]
        node_args = {
            key: args[key]
            for key in (
                "bundle",
                "distribution",
                "version",
                "arch",
                "components",
                "wasm_runtimes",
                "staging_root",
                "bin_dir",
            )
        }
        if args["images_dir"]:
            node_args["images_dir"] = args["images_dir"]
        if args["restart_marker"]:
            node_args["restart_marker"] = args["restart_marker"]
        probe = self._execute_module(
            module_name=_MODULE,
            module_args={**node_args, "_files": module_files, "_probe": True},
            task_vars=task_vars,
        )
        if probe.get("failed") and "files" not in probe:
            # The probe itself failed. A probe that went on to stage and install reports its files; those keep
            # their per-file results below, as a separate install run's would.
            result.update({k: v for k, v in probe.items() if k in ("module_stdout", "module_stderr", "exception")})
            result.update({"failed": True, "msg": probe.get("msg", "probing the node failed")})
            return result
        remote: dict[str, str | None] = probe.get("remote", {})
        to_send = [f for f in plan.files if remote.get(f.name) != f.sha256]
        result["bytes_to_send"] = sum(f.size for f in to_send)
        result["hashed_on_node"] = probe.get("hashed", 0)

        sources: dict[str, str] = {}
        created_tmp = False
        applied = probe  # with every file staged already, the probe's run staged and installed them too
        try:
            if to_send and not self._task.check_mode:
                if self._connection._shell.tmpdir is None:
                    self._make_tmp_path()
                    created_tmp = True
                tmpdir = self._connection._shell.tmpdir
                for item in to_send:
                    remote_path = self._connection._shell.join_path(tmpdir, item.name)
                    self._transfer_file(item.local_path, remote_path)
                    sources[item.name] = remote_path
                    result["bytes_sent"] += item.size
                    display.vvv(f"artifact: sent {item.name} ({item.size} bytes)", host=self._play_context.remote_addr)
                self._fixup_perms2([tmpdir, *sources.values()])
            if to_send:
                applied = self._execute_module(
                    module_name=_MODULE,
                    module_args={**node_args, "_files": module_files, "_sources": sources},
                    task_vars=task_vars,
                )
                result["hashed_on_node"] += applied.get("hashed", 0)
        finally:
            if created_tmp:
                self._remove_tmp_path(self._connection._shell.tmpdir)

        sent = set(sources)
        files = applied.get("files", [])
        for entry in files:
            entry["sent"] = entry.get("name") in sent
        result["files"] = files
        result["changed"] = bool(applied.get("changed"))
        if "diff" in applied:
            result["diff"] = applied["diff"]
        if applied.get("failed"):
            result["failed"] = True
            result["msg"] = applied.get("msg", "artifact staging failed on the node")
        else:
            result["msg"] = (
                f"{len(files)} files in place from {plan.source}; "
                f"{'would send' if self._task.check_mode else 'sent'} "
                f"{result['bytes_to_send'] if self._task.check_mode else result['bytes_sent']} bytes"
            )
        return result

    def _verify_on_controller(self, args: dict[str, Any]) -> artifacts.BundlePlan:
        bundle: str = args["bundle"]
        dist, version, arch = args["distribution"], args["version"], args["arch"]
        common = {
            "components": args["components"],
            "bin_dir": args["bin_dir"],
            "images_dir": args["images_dir"],
            "wasm_runtimes": args["wasm_runtimes"],
        }
        if artifacts.is_url(bundle):
            cache_dir = os.path.expanduser(args["cache_dir"])
            return artifacts.fetch_bundle(
                bundle, cache_dir, dist, version, arch, args["bundle_sums_sha256"] or "", _fetch, **common
            )
        root = os.path.expanduser(bundle)
        if not os.path.isabs(root):
            root = self._loader.path_dwim(root)
        directory = artifacts.bundle_dir_for(root, dist, version)
        pin = (args["bundle_sums_sha256"] or "").strip().lower()
        if pin:
            sums_path = os.path.join(directory, artifacts.sums_name(arch))
            if os.path.isfile(sums_path):
                found = sha256_file(sums_path)
                if found != pin:
                    raise artifacts.BundleError(
                        [artifacts.mismatch_message(sums_path, pin, found, "bundle_sums_sha256")]
                    )
        record = HashRecord(os.path.join(os.path.expanduser(args["cache_dir"]), artifacts.HASH_RECORD_NAME))
        try:
            return artifacts.verify_local_bundle(directory, dist, version, arch, hasher=record.sha256, **common)
        finally:
            record.save()
