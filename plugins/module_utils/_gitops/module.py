# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``edgefleet.k8s.gitops_registration`` does, without Ansible: params in, result out.

The module only parses arguments and calls :func:`run`; unit tests call it too.
"""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import sha256_bytes
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import bundle, files, keys
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import (
    DELIVERIES,
    DISTRIBUTIONS,
    ENGINE_FILE_PREFIX,
    MANIFEST_DIRS,
    REGISTRATION_FILE,
    ArgoSettings,
    ClusterFacts,
    DeployKey,
    FluxSettings,
    RepoSettings,
    node_labels,
    object_ref,
    redact_object,
    registration_objects,
    validate,
)


class RegistrationError(Exception):
    """Bad input or a refused action; the message lists every problem."""


FLUX_OPTIONS = {
    "namespace": "flux-system",
    "name": "edgefleet-fleet",
    "source_interval": "10m",
    "source_timeout": "60s",
    "interval": "10m",
    "retry_interval": "2m",
    "timeout": "5m",
    "prune": True,
    "wait": False,
    "substitute": True,
}
ARGOCD_OPTIONS = {
    "namespace": "argocd",
    "project": "default",
    "destination_namespace": "default",
    "prune": True,
    "self_heal": True,
    "retry_limit": -1,
    "backoff_duration": "30s",
    "backoff_factor": 2,
    "backoff_max_duration": "10m",
    "agent_hub": "",
    "agent_hub_port": 443,
    "agent_mode": "autonomous",
}


def _settings(params: dict[str, Any]) -> tuple[ClusterFacts, RepoSettings, FluxSettings, ArgoSettings]:
    facts = ClusterFacts(
        cluster=params.get("cluster") or "",
        path=params.get("path") or f"clusters/{params.get('cluster') or ''}",
        overlays=tuple(params.get("overlays") or ()),
        site=params.get("site") or "",
        region=params.get("region") or "",
        model=params.get("model") or "",
        channel=params.get("channel") or "",
    )
    repo = RepoSettings(
        url=params.get("repo_url") or "",
        branch=params.get("branch") or "main",
        known_hosts=params.get("known_hosts") or "",
    )
    flux_in = {k: v for k, v in (params.get("flux") or {}).items() if v is not None}
    argo_in = {k: v for k, v in (params.get("argocd") or {}).items() if v is not None}
    flux = FluxSettings(**{**FLUX_OPTIONS, **flux_in})
    argo = ArgoSettings(**{**ARGOCD_OPTIONS, **argo_in})
    return facts, repo, flux, argo


def run_keypair(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    path = params.get("deploy_key_path")
    comment = params.get("key_comment") or f"edgefleet-{params.get('cluster') or 'cluster'}"
    if params.get("deploy_key"):
        # a key the user keeps (vault): only checked, and its public half returned
        try:
            given = keys.load(params["deploy_key"], comment)
        except keys.DeployKeyError as exc:
            raise RegistrationError(str(exc)) from None
        return {"changed": False, "public_key": given.public_openssh, "fingerprint": given.fingerprint}
    if not path:
        raise RegistrationError("deploy_key_path: missing; state=keypair needs the path of the key to keep")
    try:
        key, changed = keys.ensure(path, comment, check_mode)
    except keys.DeployKeyError as exc:
        raise RegistrationError(str(exc)) from None
    return {
        "changed": changed,
        "public_key": key.public_openssh if key else "",
        "fingerprint": key.fingerprint if key else "",
        "deploy_key_path": path,
    }


def run_bundle(params: dict[str, Any]) -> dict[str, Any]:
    """Only verify an engine bundle (read-only): the role runs this on the controller before staging."""
    engine = params.get("engine") or ""
    if not params.get("engine_bundle"):
        raise RegistrationError("engine_bundle: missing; state=bundle verifies the bundle at that path")
    components = list(params.get("engine_components") or bundle.DEFAULT_COMPONENTS.get(engine, ()))
    engine_plan = bundle.plan(params["engine_bundle"], engine, components)
    if engine_plan.problems:
        head = f"{len(engine_plan.problems)} problem(s) in the {engine} bundle {params['engine_bundle']}: "
        raise RegistrationError(head + "; ".join(engine_plan.problems))
    return {
        "changed": False,
        "components": components,
        "images": engine_plan.images,
        "engine_files": {name: content.decode() for name, content in engine_plan.files.items()},
        "engine_sums": {name: sha256_bytes(content) for name, content in engine_plan.files.items()},
    }


def run(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Render, then deliver to the manifests folder or apply through the API."""
    if params.get("state") == "keypair":
        return run_keypair(params, check_mode)
    if params.get("state") == "bundle":
        return run_bundle(params)
    if not files.HAS_YAML:
        raise RegistrationError("the Python library PyYAML is needed on the host running gitops_registration")
    engine = params.get("engine") or ""
    delivery = params.get("delivery") or "manifests"
    distribution = params.get("distribution") or "k3s"
    facts, repo, flux, argo = _settings(params)
    problems = validate(engine, facts, repo, flux, argo)
    if delivery not in DELIVERIES:
        problems.append(f"delivery: found {delivery!r}, allowed: {', '.join(DELIVERIES)}")
    if distribution not in DISTRIBUTIONS:
        problems.append(f"distribution: found {distribution!r}, allowed: {', '.join(DISTRIBUTIONS)}")
    if delivery == "api" and not params.get("kubeconfig"):
        problems.append("kubeconfig: missing; delivery=api needs a kubeconfig on the host running the module")
    if repo.is_ssh and not (params.get("deploy_key") or params.get("deploy_key_path")):
        problems.append(f"deploy_key: missing; {repo.url} is an SSH URL, give deploy_key or deploy_key_path")
    if repo.is_ssh and not repo.known_hosts:
        problems.append("known_hosts: missing; an SSH repo needs the Git host's public key (ssh-keyscan <host>)")
    components = list(params.get("engine_components") or bundle.DEFAULT_COMPONENTS.get(engine, ()))
    engine_plan = None
    engine_pending = False
    if params.get("engine_files"):
        engine_plan = bundle.from_verified(
            params["engine_files"], params.get("engine_sums") or {}, list(params.get("engine_images") or [])
        )
        problems.extend(engine_plan.problems)
    elif params.get("engine_bundle"):
        if check_mode and not os.path.exists(params["engine_bundle"]):
            # check mode: the staging copy that would create it did not run; the role verified it on the controller
            engine_pending = True
            problems.extend(bundle.check_components(engine, components))
        else:
            engine_plan = bundle.plan(params["engine_bundle"], engine, components)
            problems.extend(engine_plan.problems)
    key: DeployKey | None = None
    key_changed = False
    comment = params.get("key_comment") or f"edgefleet-{facts.cluster}"
    try:
        if params.get("deploy_key") and params.get("deploy_key_public"):
            # checked on the controller (state=keypair): the node needs no cryptography library
            key = keys.trusted(params["deploy_key"], params["deploy_key_public"])
        elif params.get("deploy_key"):
            key = keys.load(params["deploy_key"], comment)
        elif params.get("deploy_key_path") and not problems:
            # generated only once the rest is known to be good: bad input touches nothing
            key, key_changed = keys.ensure(params["deploy_key_path"], comment, check_mode)
    except keys.DeployKeyError as exc:
        problems.append(str(exc))
    if problems:
        head = f"{len(problems)} problem(s) in the GitOps registration for {facts.cluster!r}: "
        raise RegistrationError(head + "; ".join(problems))

    if key is None and check_mode and params.get("deploy_key_path"):
        # check mode: the key is not generated, but the Secret that will hold it is shown
        key = DeployKey("<generated on the first real run>\n", "<generated on the first real run>")
    objects = registration_objects(engine, facts, repo, flux, argo, key)
    if engine_plan is not None:
        # an object the engine bundle already brings (its Namespace) is left to the bundle: one owner per object
        bundled = {object_ref(o) for o in _bundle_objects(engine_plan)}
        objects = [o for o in objects if object_ref(o) not in bundled]
    labels = node_labels(facts)
    result: dict[str, Any] = {
        "changed": key_changed,
        "engine": engine,
        "delivery": delivery,
        "path": facts.path,
        "public_key": key.public_openssh if key else "",
        "fingerprint": key.fingerprint if key else "",
        "objects": [redact_object(o) for o in objects],
        "refs": [object_ref(o) for o in objects],
        "node_labels": labels,
        "images": engine_plan.images if engine_plan else [],
        "diff": [],
    }
    if delivery == "manifests":
        directory = params.get("manifests_dir") or MANIFEST_DIRS[distribution]
        desired: dict[str, bytes] = {REGISTRATION_FILE: files.dump_objects(objects).encode()}
        if engine_plan is not None:
            for name, content in engine_plan.files.items():
                desired[bundle.target_name(ENGINE_FILE_PREFIX, engine, name)] = content
        file_plan = files.plan(directory, desired, ENGINE_FILE_PREFIX, frozenset({REGISTRATION_FILE}))
        if not check_mode:
            files.apply(file_plan)
        result["changed"] = result["changed"] or file_plan.changed or engine_pending
        result["engine_pending"] = engine_pending
        result["files"] = sorted(os.path.join(directory, n) for n in desired)
        result["removed"] = file_plan.remove
        result["diff"] = file_plan.diffs
        return result

    # the kubernetes client is only needed here
    from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import api

    try:
        dyn = api.connect(params["kubeconfig"], params.get("context"))
        applied_objects = list(objects)
        if engine_plan is not None:
            applied_objects = _bundle_objects(engine_plan) + applied_objects
        applied = api.apply_objects(dyn, applied_objects, check_mode)
        nodes = list(params.get("nodes") or [])
        labelled = api.label_nodes(dyn, nodes, labels, check_mode) if nodes else api.ApplyResult()
        result["changed"] = result["changed"] or bool(applied.changed or labelled.changed)
        result["applied"] = {
            "changed": applied.changed + labelled.changed,
            "unchanged": applied.unchanged + labelled.unchanged,
        }
        result["warnings"] = labelled.warnings
        for ref in applied.changed + labelled.changed:
            before = {**applied.before, **labelled.before}.get(ref) or {}
            after = {**applied.after, **labelled.after}.get(ref) or {}
            result["diff"].append({"before_header": ref, "after_header": ref, "before": before, "after": after})
        if params.get("wait") and not check_mode:
            source = next(o for o in objects if o["kind"] in ("GitRepository", "Application"))
            result["ready"] = api.wait_ready(dyn, engine, source, float(params.get("wait_timeout") or 300))
    except api.ApiApplyError as exc:
        raise RegistrationError(str(exc)) from None
    return result


def _bundle_objects(engine_plan: bundle.EnginePlan) -> list[dict[str, Any]]:
    """The engine's manifests as objects, CRDs first, for apply=api."""
    ordered = sorted(engine_plan.files.items(), key=lambda item: item[0] != bundle.CRDS_FILE)
    objects: list[dict[str, Any]] = []
    for _name, content in ordered:
        for doc in files.load_all(content):
            if isinstance(doc, dict) and doc.get("kind"):
                objects.append(doc)
    return objects
