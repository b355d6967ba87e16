"""Kit steps really install packages in a networked setup phase, then run isolated."""

from __future__ import annotations


import pytest

from .build_helpers import PYTHON, Project

pytestmark = [pytest.mark.docker, pytest.mark.slow]


# The run phase tries the Debian mirror named in the image's own apt sources.
REACH_MIRROR = (
    "host=$(sed -n 's|^deb https\\?://\\([^/ ]*\\).*|\\1|p' /etc/apt/sources.list | head -n 1); "
    "python3 -c \"import socket,sys; socket.create_connection((sys.argv[1], 80), timeout=5)\" $host "
    "&& echo reachable > /output/net || echo isolated > /output/net"
)


def test_shell_kit_installs_apt_packages_then_runs_without_network(project: Project) -> None:
    project.write(
        f"""\
        id: apt
        steps:
          - id: tool
            uses: shell
            with:
              image: {PYTHON}
              packages: [jq]
              run: |
                echo '{{"a": 41}}' | jq '.a + 1' > /output/answer
                {REACH_MIRROR}
          - id: networked
            image: {PYTHON}
            allowNetwork: true
            cmd: |
              {REACH_MIRROR}
        """
    )
    result = project.build()
    assert result.ok, project.events
    assert project.output(result, "tool", "answer") == "42\n"
    assert project.output(result, "tool", "net") == "isolated\n"
    # The same probe succeeds where network is allowed, so "isolated" means something.
    assert project.output(result, "networked", "net") == "reachable\n"


def test_python_kit_installs_pip_packages_through_the_ca_bundle(project: Project) -> None:
    project.write(
        """\
        id: pip
        steps:
          - id: py
            uses: python
            with:
              packages: [six==1.17.0]
              run: python3 -c "import six; open('/output/six', 'w').write(six.__version__)"
        """
    )
    result = project.build()
    assert result.ok, [e.data for e in project.events]
    assert project.output(result, "py", "six") == "1.17.0"
    assert project.outcomes(project.build()) == {"py": "cached"}


def test_hardened_steps_use_kit_installs_apt_and_pip(project: Project) -> None:
    """capDrop: [ALL], a user and a read-only root: setup still installs (as root, writable); cmd runs hardened."""
    project.write(
        f"""\
        id: hardened
        steps:
          - id: py
            uses: python
            with:
              packages: [six==1.17.0]
              run: python3 -c "import six; open('/output/six', 'w').write(six.__version__)"
            user: "65534"
            capDrop: [ALL]
            readOnlyRootfs: true
          - id: tool
            uses: shell
            with:
              image: {PYTHON}
              packages: [jq]
              run: |
                echo '{{"a": 1}}' | jq '.a' > /output/jq
                (touch /usr/x 2>/dev/null && echo writable || echo read-only) > /output/rootfs
                grep CapEff /proc/self/status > /output/caps
            capDrop: [ALL]
            readOnlyRootfs: true
        """
    )
    result = project.build()
    assert result.ok, [e.data for e in project.events if e.kind.value == "STEP_FAILED"]
    assert project.output(result, "py", "six") == "1.17.0"
    assert project.output(result, "tool", "jq") == "1\n"
    assert project.output(result, "tool", "rootfs") == "read-only\n"
    assert project.output(result, "tool", "caps") == "CapEff:\t0000000000000000\n"
