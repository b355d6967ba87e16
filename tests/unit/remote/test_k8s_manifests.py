"""The Kubernetes Job manifests pipex generates, checked against the Kubernetes object schemas (strict).

No cluster exists here: ``kubernetes-validate`` (the official OpenAPI schemas
as JSON Schema, unknown fields refused) is the judge of every document.
"""

from __future__ import annotations

import string
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipex import __version__
from pipex.engine.step_job import HostTree, StepJob, WorkerJob
from pipex.errors import UsageError
from pipex.remote.k8s import job_manifests, k8s_name
from pipex.spec.model import CacheSpec, PathMapping, Resources, SecretSpec, SetupSpec, Step, InputRef

K8S = "1.37.0"
DIGEST = "registry.example/team/tool@sha256:" + "ab" * 32
REMOTE = {"url": "s3://cache/team", "endpoint": "http://10.0.0.7:9000", "region": None}


def _job(step: Step, **remote: Any) -> dict[str, Any]:
    job = StepJob(step, "0123456789abcdef" * 2, {"format": 2}, "sha256:" + "cd" * 32, {"fetch": "ef" * 16}, "never built")
    hosts = {m.host: HostTree("12" * 16, m.host.endswith(".txt")) for m in (*step.mounts, *step.sources)}
    return WorkerJob(job, "b" * 16, "team", {**REMOTE, **remote}, hosts, pipex_version=__version__).to_dict()


def _validate(manifests: list[dict[str, Any]]) -> None:
    for doc in manifests:
        kubernetes_validate.validate(doc, K8S, strict=True)


FULL = Step(
    id="train_Model.v2",
    image="tool:1",
    cmd=("python", "/app/train.py", "--epochs", "3"),
    setup=SetupSpec(cmd=("pip", "install", "-r", "/app/req.txt"), allow_network=False),
    inputs=(InputRef(step="fetch"),),
    env={"MODE": "fast", "SEED": "7"},
    output_path="/results",
    mounts=(PathMapping("data/params.txt", "/params.txt"),),
    sources=(PathMapping("src", "/app"),),
    caches=(CacheSpec("pip", "/root/.cache/pip"),),
    timeout_sec=600,
    retries=2,
    user="1000:1000",
    read_only_rootfs=True,
    cap_drop=("ALL",),
    runtime="runsc",
    resources=Resources(cpus=1.5, memory="512m", pids=64),
    secrets=(SecretSpec("token", env="TOKEN"),),
)


def test_a_step_with_every_field_becomes_valid_manifests_that_say_what_the_step_is() -> None:
    config_map, policy, job = job_manifests(_job(FULL), image=DIGEST, worker_image="pipex:" + __version__)
    _validate([config_map, policy, job])
    pod = job["spec"]["template"]["spec"]
    step = next(c for c in pod["containers"] if c["name"] == "step")
    assert step["image"] == DIGEST  # pinned by digest
    assert step["command"][-4:] == ["python", "/app/train.py", "--epochs", "3"]
    assert step["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        "runAsUser": 1000, "runAsNonRoot": True, "runAsGroup": 1000,
    }
    assert step["resources"] == {"limits": {"cpu": "1500m", "memory": "512Mi"}}
    mounts = {m["mountPath"]: m for m in step["volumeMounts"]}
    assert mounts["/input/fetch"]["readOnly"] and mounts["/app"]["readOnly"] and mounts["/params.txt"]["readOnly"]
    assert "/results" in mounts and "/run/secrets" in mounts
    assert pod["runtimeClassName"] == "runsc"
    assert job["spec"]["activeDeadlineSeconds"] == 600 and job["spec"]["backoffLimit"] == 2
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "setup"]
    assert [c["name"] for c in pod["containers"]] == ["step", "push"]
    assert pod["initContainers"][0]["command"][:3] == ["pipex", "worker", "fetch"]
    assert pod["containers"][1]["command"][:3] == ["pipex", "worker", "push-output"]
    assert pod["automountServiceAccountToken"] is False
    # network: none -> no ingress, and egress only to the remote cache (fetch and push share the pod's network)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy["spec"]
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "10.0.0.7/32"}}], "ports": [{"protocol": "TCP", "port": 9000}]}]
    assert policy["spec"]["podSelector"]["matchLabels"]["pipex.io/job"] == job["metadata"]["name"]
    assert '"fingerprint": "0123456789abcdef' in config_map["data"]["job.json"]


def test_a_step_allowed_the_network_gets_egress_everywhere_and_a_minimal_step_stays_valid() -> None:
    step = Step(id="fetch", image="busybox:1", cmd=("sh", "-c", "wget -O /output/x http://example.org"), allow_network=True)
    manifests = job_manifests(_job(step, endpoint=None), image=DIGEST, worker_image="pipex:1")
    _validate(manifests)
    assert manifests[1]["spec"]["egress"] == [{}]
    assert "runtimeClassName" not in manifests[2]["spec"]["template"]["spec"]
    assert "activeDeadlineSeconds" not in manifests[2]["spec"]


def test_an_image_not_pinned_by_digest_is_refused() -> None:
    with pytest.raises(UsageError, match="pinned by digest"):
        job_manifests(_job(FULL), image="tool:1", worker_image="pipex:1")


_ids = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=80).filter(lambda s: s[0].isalnum())


@settings(max_examples=60, deadline=None)
@given(step_id=_ids, env=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True), st.text(max_size=30), max_size=4))
def test_any_step_id_and_env_give_valid_names_and_documents(step_id: str, env: dict[str, str]) -> None:
    step = Step(id=step_id, image="busybox:1", cmd=("true",), env=env)
    manifests = job_manifests(_job(step), image=DIGEST, worker_image="pipex:1")
    _validate(manifests)
    assert len(manifests[2]["metadata"]["name"]) <= 63


def test_k8s_name_is_dns_1123() -> None:
    assert k8s_name("pipex", "Train_Model.v2", "ABC") == "pipex-train-model-v2-abc"
    assert k8s_name("---") == "pipex"
