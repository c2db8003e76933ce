# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the three GitOps modules do, without Ansible: params in, result out.

One runner per module: :func:`run_deploy_key` (``gitops_deploy_key``),
:func:`run_bundle_info` (``gitops_bundle_info``) and :func:`run_registration`
(``gitops_registration``). The modules only parse arguments (``options.py``) and
call them; unit and integration tests call them too, with only the options they
care about (the rest take their defaults from ``options.py``).
"""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import sha256_bytes
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import bundle, files, helm, keys, options
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import (
    DELIVERIES,
    DISTRIBUTIONS,
    ENGINE_FILE_PREFIX,
    ENGINE_TABLE,
    MANIFEST_DIRS,
    REGISTRATION_FILE,
    ArgoSettings,
    ClusterFacts,
    DeployKey,
    FluxSettings,
    RepoSettings,
    components_for,
    is_ssh_url,
    node_labels,
    object_ref,
    redact_object,
    registration_objects,
    validate,
)


class GitopsError(Exception):
    """Bad input or a refused action; the message lists every problem."""


def _settings(params: dict[str, Any]) -> tuple[ClusterFacts, RepoSettings, FluxSettings, ArgoSettings]:
    cluster = params["cluster"] or ""
    facts = ClusterFacts(
        cluster=cluster,
        path=params["path"] or f"clusters/{cluster}",
        overlays=tuple(params["overlays"]),
        site=params["site"],
        region=params["region"],
        model=params["model"],
        channel=params["channel"],
    )
    repo = RepoSettings(url=params["repo_url"] or "", branch=params["branch"], known_hosts=params["known_hosts"])
    flux = FluxSettings(**params["flux"])
    argo = ArgoSettings(**params["argocd"])
    return facts, repo, flux, argo


def _comment(given: str, cluster: str | None) -> str:
    return given or f"edgefleet-{cluster or 'cluster'}"


def run_deploy_key(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Keep the cluster's SSH deploy key at ``path`` (generated 0600 when missing), or check the one given.

    A repo URL that is not SSH needs no key: nothing is read or written (``needed: false``).
    """
    params = options.complete(options.DEPLOY_KEY, params)
    path = params["path"]
    comment = _comment(params["comment"], params.get("cluster"))
    result: dict[str, Any] = {
        "changed": False,
        "needed": True,
        "public_key": "",
        "fingerprint": "",
        "ssh_fingerprint": "",
        "path": path,
    }
    if params["repo_url"] and not is_ssh_url(params["repo_url"]):
        return {**result, "needed": False}
    if params["private_key"] and params["rotation_id"]:
        raise GitopsError(
            "rotation_id: the deploy key is given as private_key (ansible-vault): put a new key there, then swap the "
            "deploy key at the Git host; nothing was changed"
        )
    if params["private_key"]:
        # a key the user keeps (vault): only checked, and its public half returned
        try:
            given = keys.load(params["private_key"], comment, source="private_key")
        except keys.DeployKeyError as exc:
            raise GitopsError(str(exc)) from None
        return {
            **result,
            "public_key": given.public_openssh,
            "fingerprint": given.fingerprint,
            "ssh_fingerprint": given.ssh_fingerprint,
        }
    if not path:
        raise GitopsError("path: missing; gitops_deploy_key needs the path of the key to keep, or private_key")
    rotation: dict[str, Any] = {}
    try:
        if params["rotation_id"]:
            rotation = keys.rotate(path, comment, params["rotation_id"], check_mode)
            key, changed = rotation.pop("key"), bool(rotation.pop("changed"))
        else:
            key, changed = keys.ensure(path, comment, check_mode)
    except keys.DeployKeyError as exc:
        raise GitopsError(str(exc)) from None
    return {
        **result,
        **rotation,
        "changed": changed,
        "public_key": key.public_openssh if key else "",
        "fingerprint": key.fingerprint if key else "",
        "ssh_fingerprint": key.ssh_fingerprint if key else "",
    }


def bundle_dir(root: str, engine: str, version: str) -> str:
    """Where the bundle of one engine version sits under its root (docs/gitops.md)."""
    return os.path.join(root, "gitops", engine, version)


def run_bundle_info(params: dict[str, Any]) -> dict[str, Any]:
    """Verify one engine bundle (read-only) and return its files for a later gitops_registration.

    The role runs this on the controller before anything reaches a node. With no
    ``root`` there is no bundle: only the registration will be delivered.
    """
    params = options.complete(options.BUNDLE_INFO, params)
    engine = params["engine"] or ""
    components = components_for(engine, params["components"])
    result: dict[str, Any] = {
        "changed": False,
        "path": "",
        "components": components,
        "images": [],
        "engine_files": {},
        "engine_sums": {},
    }
    if not params["root"]:
        return result
    if not params["version"]:
        raise GitopsError(f"version: missing; the {engine} bundle under {params['root']} is picked by its version")
    path = bundle_dir(params["root"], engine, params["version"])
    engine_plan = bundle.plan(path, engine, components)
    if engine_plan.problems:
        head = f"{len(engine_plan.problems)} problem(s) in the {engine} bundle {path}: "
        raise GitopsError(head + "; ".join(engine_plan.problems))
    return {
        **result,
        "path": path,
        "images": engine_plan.images,
        "engine_files": {name: content.decode() for name, content in engine_plan.files.items()},
        "engine_sums": {name: sha256_bytes(content) for name, content in engine_plan.files.items()},
    }


def run_registration(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Render the cluster's objects, then write them to the manifests folder or apply them through the API."""
    params = options.complete(options.REGISTRATION, params)
    if not files.HAS_YAML:
        raise GitopsError("the Python library PyYAML is needed on the host running gitops_registration")
    engine = params["engine"] or ""
    delivery = params["delivery"]
    distribution = params["distribution"]
    facts, repo, flux, argo = _settings(params)
    problems = validate(engine, facts, repo, flux, argo)
    if delivery not in DELIVERIES:
        problems.append(f"delivery: found {delivery!r}, allowed: {', '.join(DELIVERIES)}")
    if distribution not in DISTRIBUTIONS:
        problems.append(f"distribution: found {distribution!r}, allowed: {', '.join(DISTRIBUTIONS)}")
    if delivery == "api" and not params["kubeconfig"]:
        problems.append("kubeconfig: missing; delivery=api needs a kubeconfig on the host running the module")
    if repo.is_ssh and not (params["deploy_key"] or params["deploy_key_path"]):
        problems.append(f"deploy_key: missing; {repo.url} is an SSH URL, give deploy_key or deploy_key_path")
    if repo.is_ssh and not repo.known_hosts:
        problems.append("known_hosts: missing; an SSH repo needs the Git host's public key (ssh-keyscan <host>)")
    components = components_for(engine, params["engine_components"])
    helm_settings = helm.from_mapping(params["helm"]) if (params["helm"] or {}).get("chart") else None
    if helm_settings is not None:
        problems.extend(helm.validate(helm_settings))
        # an engine bundle that is delivered must bring Flux's helm-controller, or the HelmRelease is never reconciled
        if engine == "flux" and params["engine_files"] and "helm-controller.yaml" not in params["engine_files"]:
            problems.append(
                f"engine_files: found {sorted(params['engine_files'])}, allowed: files with helm-controller.yaml; "
                "the Helm layering (helm.chart) needs Flux's helm-controller (add it to the bundle's components)"
            )
        elif engine == "flux" and params["engine_bundle"] and "helm-controller" not in components:
            problems.append(
                f"engine_components: found {components}, allowed: a list with helm-controller; "
                "the Helm layering (helm.chart) needs Flux's helm-controller"
            )
    engine_plan = None
    engine_pending = False
    if params["engine_files"]:
        engine_plan = bundle.from_verified(params["engine_files"], params["engine_sums"], list(params["engine_images"]))
        problems.extend(engine_plan.problems)
    elif params["engine_bundle"]:
        if check_mode and not os.path.exists(params["engine_bundle"]):
            # check mode: the copy that would create it did not run; it was verified where it came from
            engine_pending = True
            problems.extend(bundle.check_components(engine, components))
        else:
            engine_plan = bundle.plan(params["engine_bundle"], engine, components)
            problems.extend(engine_plan.problems)
    key: DeployKey | None = None
    key_changed = False
    if repo.is_ssh:
        # only an SSH repo is reached with the deploy key; for any other URL the key options are not used
        comment = _comment(params["key_comment"], facts.cluster)
        key, key_changed = _registration_key(params, comment, check_mode, problems)
    if problems:
        head = f"{len(problems)} problem(s) in the GitOps registration for {facts.cluster!r}: "
        raise GitopsError(head + "; ".join(problems))

    if key is None and check_mode and repo.is_ssh and params["deploy_key_path"]:
        # check mode: the key is not generated, but the Secret that will hold it is shown
        key = DeployKey("<generated on the first real run>\n", "<generated on the first real run>")
    objects = registration_objects(engine, facts, repo, flux, argo, key, helm_settings)
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
        directory = params["manifests_dir"] or MANIFEST_DIRS[distribution]
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
        dyn = api.connect(params["kubeconfig"], params["context"] or None)
        applied_objects = list(objects)
        if engine_plan is not None:
            applied_objects = _bundle_objects(engine_plan) + applied_objects
        applied = api.apply_objects(dyn, applied_objects, check_mode)
        nodes = list(params["nodes"])
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
        if params["wait"] and not check_mode:
            source = next(o for o in objects if o["kind"] == ENGINE_TABLE[engine].source_kind)
            result["ready"] = api.wait_ready(dyn, engine, source, float(params["wait_timeout"]))
    except api.ApiApplyError as exc:
        raise GitopsError(str(exc)) from None
    return result


def _registration_key(
    params: dict[str, Any], comment: str, check_mode: bool, problems: list[str]
) -> tuple[DeployKey | None, bool]:
    """The deploy key for the registration, and whether keeping it changed a file; a bad key joins ``problems``."""
    try:
        if params["deploy_key"] and params["deploy_key_public"]:
            # checked on the controller (gitops_deploy_key): the node needs no cryptography library
            return keys.trusted(params["deploy_key"], params["deploy_key_public"]), False
        if params["deploy_key"]:
            return keys.load(params["deploy_key"], comment), False
        if params["deploy_key_path"] and not problems:
            # generated only once the rest is known to be good: bad input touches nothing
            return keys.ensure(params["deploy_key_path"], comment, check_mode)
    except keys.DeployKeyError as exc:
        problems.append(str(exc))
    return None, False


def _bundle_objects(engine_plan: bundle.EnginePlan) -> list[dict[str, Any]]:
    """The engine's manifests as objects, CRDs first, for apply=api."""
    ordered = sorted(engine_plan.files.items(), key=lambda item: item[0] != bundle.CRDS_FILE)
    objects: list[dict[str, Any]] = []
    for _name, content in ordered:
        for doc in files.load_all(content):
            if isinstance(doc, dict) and doc.get("kind"):
                objects.append(doc)
    return objects
