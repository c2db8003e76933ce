# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k0s ``ClusterConfig`` (k0s.k0sproject.io/v1beta1) keys we know.

Our own list, taken as facts from the k0s configuration reference. The schema is
a tree: each entry maps a dotted path to the keys allowed under it. A path that
maps to ``None`` is free-form (``extraArgs``, ``featureGates``...). A path that is
absent below a known key is not checked deeper (nested provider settings).
"""

from __future__ import annotations

API_VERSION = "k0s.k0sproject.io/v1beta1"
KIND = "ClusterConfig"

SCHEMA: dict[str, frozenset[str] | None] = {
    "": frozenset({"apiVersion", "kind", "metadata", "spec"}),
    "metadata": frozenset({"name", "namespace", "labels", "annotations"}),
    "spec": frozenset(
        {
            "api",
            "controllerManager",
            "scheduler",
            "storage",
            "network",
            "installConfig",
            "workerProfiles",
            "telemetry",
            "images",
            "extensions",
            "konnectivity",
            "featureGates",
        }
    ),
    "spec.api": frozenset(
        {
            "address",
            "externalAddress",
            "sans",
            "port",
            "k0sApiPort",
            "extraArgs",
            "rawArgs",
            "onlyBindToAddress",
            "ca",
        }
    ),
    "spec.api.extraArgs": None,
    "spec.controllerManager": frozenset({"extraArgs", "rawArgs"}),
    "spec.controllerManager.extraArgs": None,
    "spec.scheduler": frozenset({"extraArgs", "rawArgs"}),
    "spec.scheduler.extraArgs": None,
    "spec.storage": frozenset({"type", "etcd", "kine"}),
    "spec.storage.etcd": frozenset({"peerAddress", "extraArgs", "externalCluster", "ca"}),
    "spec.storage.etcd.extraArgs": None,
    "spec.storage.kine": frozenset({"dataSource"}),
    "spec.network": frozenset(
        {
            "provider",
            "podCIDR",
            "serviceCIDR",
            "clusterDomain",
            "dualStack",
            "kuberouter",
            "calico",
            "kubeProxy",
            "nodeLocalLoadBalancing",
            "controlPlaneLoadBalancing",
        }
    ),
    "spec.telemetry": frozenset({"enabled"}),
    "spec.konnectivity": frozenset({"agentPort", "adminPort"}),
    "spec.installConfig": frozenset({"users"}),
    "spec.featureGates": None,
    "spec.workerProfiles": None,
    "spec.images": None,
    "spec.extensions": None,
}

STORAGE_TYPES: frozenset[str] = frozenset({"etcd", "kine"})

# Map-of-string sections: k0s unmarshals them into map[string]string, so every
# value is rendered as a string.
STRING_MAPS: frozenset[str] = frozenset(
    {
        "spec.api.extraArgs",
        "spec.controllerManager.extraArgs",
        "spec.scheduler.extraArgs",
        "spec.storage.etcd.extraArgs",
    }
)

SECRET_KEYS: frozenset[str] = frozenset({"dataSource"})

# Paths the role computes; a user override may not set them.
MANAGED_PATHS: frozenset[str] = frozenset({"spec.storage.type", "spec.storage.kine.dataSource"})
