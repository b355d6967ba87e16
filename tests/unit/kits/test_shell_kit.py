"""The shell kit: run, packages, image (and its overrides)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from pipex.kits import KitContext
from pipex.kits.shell import expand
from pipex.spec.load import load_pipeline
from pipex.spec.model import CacheSpec


def test_run_string_in_default_alpine_image(ctx: KitContext) -> None:
    assert expand({"run": "echo hi"}, ctx) == {"image": "alpine:3.20", "cmd": "echo hi"}


def test_run_list_is_an_argv(ctx: KitContext) -> None:
    assert expand({"run": ["echo", "hi"]}, ctx)["cmd"] == ["echo", "hi"]


def test_image_param_wins_over_config_image(ctx: KitContext) -> None:
    configured = dataclasses.replace(ctx, image="mirror/alpine:3")
    assert expand({"run": "x"}, configured)["image"] == "mirror/alpine:3"
    assert expand({"run": "x", "image": "busybox:1"}, configured)["image"] == "busybox:1"


def test_packages_install_in_setup_with_network_and_exclusive_caches(ctx: KitContext) -> None:
    step = expand({"run": "curl x", "packages": ["curl", "jq=1.6*"]}, ctx)
    setup = step["setup"]
    assert setup["allowNetwork"] is True
    assert {c["name"]: c["exclusive"] for c in setup["caches"]} == {"apt-cache": True, "apt-lists": True, "apk-cache": True}
    assert "apt-get install -y -qq --no-install-recommends -o APT::Keep-Downloaded-Packages=true curl 'jq=1.6*'" in setup["cmd"]
    assert "apk add --cache-dir /var/cache/apk curl 'jq=1.6*'" in setup["cmd"]


def test_no_packages_no_setup(ctx: KitContext) -> None:
    assert "setup" not in expand({"run": "x", "packages": []}, ctx)


def test_shell_step_through_the_loader(project: Callable[..., Path]) -> None:
    project(
        {
            "pipeline.yaml": "steps:\n  - id: a\n    uses: shell\n    with: {run: 'echo hi', packages: [curl]}\n",
            ".pipex.yml": "kits:\n  shell: {image: pipex-test/busybox:1}\n",
        }
    )
    step = load_pipeline().steps[0]
    assert (step.image, step.cmd, step.kit) == ("pipex-test/busybox:1", ("sh", "-e", "-c", "echo hi"), "shell")
    assert step.setup is not None and step.setup.allow_network
    assert CacheSpec("apt-cache", "/var/cache/apt", True) in step.setup.caches
    assert step.allow_network is False
