#!/usr/bin/env python3
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the LAB STAND-IN GitOps engine bundles: <out>/gitops/{flux,argocd}/lab/.

The real Flux and Argo CD release manifests cannot be had where this project is
built. These bundles hold minimal HAND-WRITTEN CRDs of our own (the upstream
group/kind/plural names, but an open schema: x-kubernetes-preserve-unknown-fields)
and stand-in controller Deployments whose images do not exist: in the lab nothing
runs them (the control-plane stand-ins have no kubelet). They let the lab prove
that the registration objects are accepted by a real kube-apiserver, no more.

Usage: make_bundle.py <bundle_root>    (idempotent; prints the bundle dirs)
"""

from __future__ import annotations

import hashlib
import os
import sys

import yaml

STANDIN_NOTE = "edgefleet lab stand-in: minimal hand-written schema, not the upstream CRD"

CRDS = {
    "flux": [
        ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories", ["gitrepo"], "v1"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", ["ks"], "v1"),
    ],
    "argocd": [
        ("argoproj.io", "Application", "applications", ["app", "apps"], "v1alpha1"),
        ("argoproj.io", "AppProject", "appprojects", ["appproj"], "v1alpha1"),
    ],
}
COMPONENTS = {
    "flux": ("flux-system", ["source-controller", "kustomize-controller", "helm-controller"]),
    "argocd": ("argocd", ["application-controller", "repo-server", "redis"]),
}


def crd(group: str, kind: str, plural: str, short: list[str], version: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            "annotations": {"edgefleet.io/stand-in": STANDIN_NOTE},
        },
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def component(namespace: str, name: str) -> list[dict[str, object]]:
    labels = {"app": name, "edgefleet.io/stand-in": "true"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {"edgefleet.io/stand-in": "lab stand-in; no pod runs in the lab"},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": "manager",
                                "image": f"localhost/edgefleet-standin/{name}:lab",
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "256Mi"},
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]


def dump(docs: list[dict[str, object]]) -> str:
    head = f"# {STANDIN_NOTE}. Written by tests/lab/gitops/make_bundle.py.\n"
    return head + yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)


def write(path: str, text: str) -> None:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def main(root: str) -> None:
    for engine, (namespace, components) in COMPONENTS.items():
        out = os.path.join(root, "gitops", engine, "lab")
        os.makedirs(out, exist_ok=True)
        files = {
            "crds.yaml": dump(
                [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
                + [crd(*c) for c in CRDS[engine]]
            ),
            "images.txt": "".join(f"{c} localhost/edgefleet-standin/{c}:lab\n" for c in components),
        }
        for name in components:
            files[f"{name}.yaml"] = dump(component(namespace, name))
        for name, text in files.items():
            write(os.path.join(out, name), text)
        sums = "".join(f"{hashlib.sha256(files[n].encode()).hexdigest()}  {n}\n" for n in sorted(files))
        write(os.path.join(out, "sha256sum.txt"), sums)
        print(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
