# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``edgefleet_gitops_apply: api``: server-side apply of the registration objects.

Used from the controller with a kubeconfig (the node needs no Python client).
Field manager ``edgefleet``. A change is judged by comparing the object before
and after the apply with server-owned fields removed, so a second apply of the
same objects reports no change, in check mode (``dryRun=All``) as for real.
"""

from __future__ import annotations

import base64
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import FIELD_MANAGER, object_ref, redact_object

try:
    from kubernetes import config as k8s_config
    from kubernetes import dynamic
    from kubernetes.client import api_client
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - depends on the host
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = str(exc)

_SERVER_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")


class ApiApplyError(Exception):
    pass


@dataclass
class ApplyResult:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # ref -> redacted object
    after: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def connect(kubeconfig: str | None, context: str | None = None) -> Any:
    if not HAS_KUBERNETES:
        raise ApiApplyError(f"the Python library kubernetes is needed for apply=api: {KUBERNETES_IMPORT_ERROR}")
    try:
        client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    except Exception as exc:  # the loader raises several unrelated types
        raise ApiApplyError(f"kubeconfig {kubeconfig}: cannot load it ({exc})") from None
    return dynamic.DynamicClient(client)  # type: ignore[no-untyped-call]


def normalize(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object without server-owned fields, for comparison."""
    if obj is None:
        return None
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    meta = clean.get("metadata", {})
    for key in _SERVER_META:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        meta.pop("annotations", None)
    return clean


def to_api_body(obj: dict[str, Any]) -> dict[str, Any]:
    """Secrets go in as ``data`` (base64): ``stringData`` is write-only and would never compare equal."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return obj
    body = {k: v for k, v in obj.items() if k != "stringData"}
    data = dict(obj.get("data") or {})
    for key, value in obj["stringData"].items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    body["data"] = data
    return body


def _to_dict(response: Any) -> dict[str, Any]:
    result = response.to_dict() if hasattr(response, "to_dict") else response
    return api_client.ApiClient().sanitize_for_serialization(result)  # type: ignore[no-any-return,no-untyped-call]


def apply_objects(dyn: Any, objects: list[dict[str, Any]], check_mode: bool = False) -> ApplyResult:
    result = ApplyResult()
    missing: list[str] = []
    batch_kinds = _crd_kinds(objects)
    for obj in objects:
        ref = object_ref(obj)
        resource = _resource(dyn, obj, wait=not check_mode and _kind_key(obj) in batch_kinds)
        if resource is None:
            if check_mode and _kind_key(obj) in batch_kinds:
                # its CRD is part of this run and only exists after it
                result.changed.append(ref)
                result.after[ref] = redact_object(obj)
                continue
            missing.append(f"{ref}: the API has no {obj['kind']} in {obj['apiVersion']}; install the engine CRDs first")
            continue
        meta = obj["metadata"]
        namespace = meta.get("namespace") if resource.namespaced else None
        try:
            before: dict[str, Any] | None = _to_dict(resource.get(name=meta["name"], namespace=namespace))
        except NotFoundError:
            before = None
        body = to_api_body(obj)
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if check_mode:
            kwargs["dry_run"] = "All"
        try:
            response = dyn.server_side_apply(resource, body=body, name=meta["name"], namespace=namespace, **kwargs)
            after = _to_dict(response)
        except DynamicApiError as exc:
            if check_mode and before is None and exc.status == 404:
                # dry run of an object whose namespace is only created by this same run
                after = body
            else:
                detail = exc.summary()  # type: ignore[no-untyped-call]
                raise ApiApplyError(f"{ref}: the API refused it: {exc.status} {exc.reason}: {detail}") from None
        if normalize(before) == normalize(after):
            result.unchanged.append(ref)
        else:
            result.changed.append(ref)
            result.before[ref] = redact_object(normalize(before) or {})
            result.after[ref] = redact_object(normalize(after) or {})
    if missing:
        raise ApiApplyError("; ".join(missing))
    return result


def _kind_key(obj: dict[str, Any]) -> tuple[str, str]:
    return (str(obj.get("apiVersion", "")).split("/", maxsplit=1)[0], str(obj.get("kind", "")))


def _crd_kinds(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(group, kind) of every CRD in the batch."""
    kinds: set[tuple[str, str]] = set()
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            kinds.add((str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))))
    return kinds


def _resource(dyn: Any, obj: dict[str, Any], wait: bool, timeout: float = 30.0) -> Any:
    """The API resource for the object's kind; waits for a CRD applied in this run to be served."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            if not wait or time.monotonic() >= deadline:
                return None
            time.sleep(1.0)
            dyn.resources.invalidate_cache()


def label_nodes(dyn: Any, nodes: list[str], labels: dict[str, str], check_mode: bool = False) -> ApplyResult:
    """Merge ``labels`` into each Node (only the keys we own, by server-side apply)."""
    result = ApplyResult()
    resource = dyn.resources.get(api_version="v1", kind="Node")
    for name in nodes:
        ref = f"Node/{name}"
        try:
            current = _to_dict(resource.get(name=name))
        except NotFoundError:
            result.warnings.append(f"{ref}: not registered yet; its labels come from the distribution config")
            continue
        have = current.get("metadata", {}).get("labels") or {}
        if all(have.get(k) == v for k, v in labels.items()):
            result.unchanged.append(ref)
            continue
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if check_mode:
            kwargs["dry_run"] = "All"
        try:
            dyn.server_side_apply(resource, body=body, name=name, **kwargs)
        except DynamicApiError as exc:
            raise ApiApplyError(f"{ref}: the API refused the labels: {exc.status} {exc.reason}") from None
        result.changed.append(ref)
        result.before[ref] = {k: have.get(k) for k in labels}
        result.after[ref] = dict(labels)
    return result


def _ready(obj: dict[str, Any], engine: str) -> tuple[bool, str]:
    status = obj.get("status") or {}
    if engine == "flux":
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                reason = f"{condition.get('reason', '')}: {condition.get('message', '')}"
                message = f"Ready={condition.get('status')} {reason}"
                return condition.get("status") == "True", message
        return False, "no Ready condition yet (is source-controller running?)"
    sync = (status.get("sync") or {}).get("status", "Unknown")
    health = (status.get("health") or {}).get("status", "Unknown")
    return sync == "Synced" and health == "Healthy", f"sync={sync} health={health}"


def wait_ready(dyn: Any, engine: str, obj: dict[str, Any], timeout: float, poll: float = 2.0) -> str:
    """Wait until the GitRepository (Flux) or Application (Argo CD) is Ready; raise with the last status."""
    resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    deadline = time.monotonic() + timeout
    last = "not found"
    while True:
        try:
            ok, last = _ready(_to_dict(resource.get(name=meta["name"], namespace=meta.get("namespace"))), engine)
        except NotFoundError:
            ok = False
        if ok:
            return last
        if time.monotonic() >= deadline:
            raise ApiApplyError(f"{object_ref(obj)}: not Ready after {timeout:g}s; last status: {last}")
        time.sleep(poll)
