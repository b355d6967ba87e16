"""Kubernetes Jobs for step jobs: the manifests a step would get, generated, never submitted (``REMOTE.md`` §2).

Per worker job: a ConfigMap holding the job document, a NetworkPolicy and a
Job whose pod has

- init container ``fetch`` (an image with pipex): ``pipex worker fetch``
  lays the input trees and the project's mounted paths out in ``/work``;
- init container ``setup`` (the step image) when the step has a setup;
- container ``step``: the step's image **pinned by digest**, its command,
  inputs read-only at ``/input/<step>``, mounts read-only, the output an
  ``emptyDir``; hardening as ``securityContext``, limits as ``resources``;
  the exit code is written to ``/pipex/status/exit``;
- container ``push`` (pipex): ``pipex worker push-output`` waits for that
  file, ingests the output, records the run and pushes it to the remote.

``network: false`` becomes a NetworkPolicy denying all ingress and every
egress but the remote cache's address (the fetch and push containers share
the pod's network); ``runtime`` becomes ``runtimeClassName``, ``timeoutSec``
``activeDeadlineSeconds``, ``retries`` ``backoffLimit``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pipex.errors import UsageError

__all__ = ["job_manifests", "k8s_name", "to_yaml_stream"]

_NAME_RE = re.compile(r"[^a-z0-9-]+")
_STATUS = "/pipex/status"
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)$", re.IGNORECASE)


def k8s_name(*parts: str) -> str:
    """A DNS-1123 name from ``parts`` (lower case, '-', at most 63 characters)."""
    name = _NAME_RE.sub("-", "-".join(parts).lower()).strip("-")
    return name[:63].rstrip("-") or "pipex"


def job_manifests(job: Mapping[str, Any], *, image: str, worker_image: str, namespace: str = "default") -> list[dict[str, Any]]:
    """The ConfigMap, NetworkPolicy and Job of one worker job document; ``image`` is the step's, pinned by digest."""
    if "@sha256:" not in image:
        msg = f"image {image!r} is not pinned by digest (name@sha256:…): a cluster must run the image the fingerprint names"
        raise UsageError(msg)
    step_job = job["job"]
    step = step_job["step"]
    name = k8s_name("pipex", step["id"], step_job["fingerprint"][:12])
    labels = {"app.kubernetes.io/managed-by": "pipex", "pipex.io/job": name, "pipex.io/build": k8s_name(job["buildId"])}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"job.json": json.dumps(job, sort_keys=True)}}
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "initContainers": _init_containers(job, image, worker_image),
        "containers": [_step_container(step, image), _push_container(worker_image, step)],
        "volumes": _volumes(name, step),
    }
    if step.get("runtime"):
        pod["runtimeClassName"] = step["runtime"]
    spec: dict[str, Any] = {
        "backoffLimit": int(step.get("retries") or 0),
        "ttlSecondsAfterFinished": 3600,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    if step.get("timeout_sec"):
        spec["activeDeadlineSeconds"] = int(step["timeout_sec"])
    batch_job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}
    return [config_map, _network_policy(meta, step, job.get("remote") or {}), batch_job]


def _mounts(step: Mapping[str, Any]) -> list[dict[str, Any]]:
    mounts = [{"name": "work", "mountPath": f"/input/{ref['step']}", "subPath": f"input/{ref['step']}", "readOnly": True}
              for ref in step.get("inputs") or ()]  # fmt: skip
    for mapping in (*(step.get("mounts") or ()), *(step.get("sources") or ())):
        mounts.append({"name": "work", "mountPath": mapping["container"], "subPath": f"project/{mapping['host']}", "readOnly": True})
    for index, cache in enumerate(step.get("caches") or ()):
        mounts.append({"name": f"cache-{index}", "mountPath": cache["path"]})
    if step.get("secrets"):
        mounts.append({"name": "secrets", "mountPath": "/run/secrets", "readOnly": True})
    return mounts


def _init_containers(job: Mapping[str, Any], image: str, worker_image: str) -> list[dict[str, Any]]:
    step = job["job"]["step"]
    fetch = {
        "name": "fetch",
        "image": worker_image,
        "command": ["pipex", "worker", "fetch", "/pipex/job/job.json", "--into", "/work"],
        "envFrom": [{"secretRef": {"name": "pipex-remote-credentials"}}],
        "volumeMounts": [{"name": "job", "mountPath": "/pipex/job", "readOnly": True}, {"name": "work", "mountPath": "/work"}],
        "securityContext": _hardening({"cap_drop": ["ALL"]}),
    }
    containers = [fetch]
    setup = step.get("setup")
    if setup:
        containers.append({
            "name": "setup", "image": image, "command": list(setup["cmd"]), "env": _env(step),
            "volumeMounts": [*_mounts(step), {"name": "output", "mountPath": step.get("output_path") or "/output"}],
            "securityContext": _hardening(step),
        })  # fmt: skip
    return containers


def _step_container(step: Mapping[str, Any], image: str) -> dict[str, Any]:
    # The exit code goes to a file the push container waits for (containers of a pod are not sequenced).
    wrapped = ["/bin/sh", "-c", f'"$@"; echo $? > {_STATUS}/exit', "pipex-step", *step["cmd"]]
    container: dict[str, Any] = {
        "name": "step",
        "image": image,
        "command": wrapped,
        "env": _env(step),
        "volumeMounts": [
            *_mounts(step),
            {"name": "output", "mountPath": step.get("output_path") or "/output"},
            {"name": "status", "mountPath": _STATUS},
        ],
        "securityContext": _hardening(step),
    }
    limits = _limits(step.get("resources") or {})
    if limits:
        container["resources"] = {"limits": limits}
    return container


def _push_container(worker_image: str, step: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": "push",
        "image": worker_image,
        "command": ["pipex", "worker", "push-output", "/pipex/job/job.json", "--output", "/output", "--status", f"{_STATUS}/exit"],
        "envFrom": [{"secretRef": {"name": "pipex-remote-credentials"}}],
        "volumeMounts": [
            {"name": "job", "mountPath": "/pipex/job", "readOnly": True},
            {"name": "output", "mountPath": "/output"},
            {"name": "status", "mountPath": _STATUS, "readOnly": True},
        ],
        "securityContext": _hardening({"cap_drop": ["ALL"]}),
    }


def _volumes(name: str, step: Mapping[str, Any]) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "job", "configMap": {"name": name}},
        {"name": "work", "emptyDir": {}},
        {"name": "output", "emptyDir": {}},
        {"name": "status", "emptyDir": {}},
    ]
    volumes += [{"name": f"cache-{i}", "emptyDir": {}} for i, _ in enumerate(step.get("caches") or ())]
    if step.get("secrets"):
        items = [{"key": s["name"], "path": s["name"]} for s in step["secrets"]]
        volumes.append({"name": "secrets", "secret": {"secretName": "pipex-secrets", "items": items}})
    return volumes


def _env(step: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in sorted((step.get("env") or {}).items())]


def _hardening(step: Mapping[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if step.get("read_only_rootfs"):
        context["readOnlyRootFilesystem"] = True
    if step.get("cap_drop"):
        context["capabilities"] = {"drop": [str(c).upper() for c in step["cap_drop"]]}
    user = str(step.get("user") or "")
    uid, _, gid = user.partition(":")
    if uid.isdigit():
        context["runAsUser"] = int(uid)
        context["runAsNonRoot"] = int(uid) != 0
    if gid.isdigit():
        context["runAsGroup"] = int(gid)
    return context


def _limits(resources: Mapping[str, Any]) -> dict[str, str]:
    limits: dict[str, str] = {}
    if resources.get("cpus"):
        limits["cpu"] = f"{int(float(resources['cpus']) * 1000)}m"
    if resources.get("memory"):
        found = _MEMORY_RE.match(str(resources["memory"]))
        if found:  # Docker's 512m is 512 MiB: Kubernetes spells it 512Mi
            number, unit = found.groups()
            limits["memory"] = f"{number}{ {'': '', 'b': '', 'k': 'Ki', 'm': 'Mi', 'g': 'Gi'}[unit.lower()] }"
    return limits


def _network_policy(metadata: Mapping[str, Any], step: Mapping[str, Any], remote: Mapping[str, Any]) -> dict[str, Any]:
    """Deny all ingress; deny egress too unless the step may use the network, but for the remote cache."""
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"pipex.io/job": metadata["name"]}}, "policyTypes": ["Ingress", "Egress"]}
    allowed = bool(step.get("allow_network") or (step.get("setup") or {}).get("allow_network"))
    if allowed:
        spec["egress"] = [{}]  # every destination
    else:
        spec["egress"] = _remote_egress(remote.get("endpoint"))
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": dict(metadata), "spec": spec}


def _remote_egress(endpoint: str | None) -> list[dict[str, Any]]:
    """Egress to the remote's address only (an IP endpoint), else to DNS and HTTPS (a named endpoint)."""
    if not endpoint:
        return [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 443}]}]
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": port}]}]
    cidr = f"{address}/{32 if address.version == 4 else 128}"
    return [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": port}]}]


def to_yaml_stream(manifests: list[dict[str, Any]]) -> str:
    """The manifests as one YAML stream (``---`` between documents), for ``kubectl apply -f``."""
    import yaml

    return "".join(f"---\n{yaml.safe_dump(doc, sort_keys=False)}" for doc in manifests)
