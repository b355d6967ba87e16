"""Fuzz every command's arguments: random argv made of its own options and hostile values; never a traceback, never a hang.

Each case runs ``python -m pipex CMD ARGS…`` in a project on a store of its
own, with no Docker engine reachable (nothing may start a container), and
must end within its time limit with exit 0, 1, 2 or 130 and no traceback.
Cases per command: ``PIPEX_RELIABILITY_ARGV_CASES`` (default 6).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import BUSYBOX, iterations, write_project

pytestmark = pytest.mark.slow

HOSTILE_VALUES = [
    "", "-", "--", "*", "?", "..", "../..", "/", "/etc/passwd", "/dev/zero", "/dev/full", "~", "$HOME",
    "a" * 5000, "é✓\u202e", "\x1b[2J", "0", "-1", "99999999999999999999999", "1e309", "nan", "true",
    "a,b,,c", "s", "t", "s-*", "[", "{}", "'", '"', "\\", "ws", "nosuch", "-v", "--json", "--help",
]


def _commands() -> dict[str, list[str]]:
    """Every command of the CLI with the option names it takes."""
    import typer

    from pipex.cli.main import _register_commands, app

    _register_commands()
    group = typer.main.get_command(app)
    out: dict[str, list[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        options: list[str] = []
        for param in command.params:
            options.extend(getattr(param, "opts", []))
            options.extend(getattr(param, "secondary_opts", []))
        out[name] = options
    return out


def _argv(rng: random.Random, options: list[str]) -> list[str]:
    args: list[str] = []
    for _ in range(rng.randint(0, 6)):
        roll = rng.random()
        if roll < 0.45 and options:
            option = rng.choice(options)
            args.append(option)
            if rng.random() < 0.6:
                args.append(rng.choice(HOSTILE_VALUES))
        elif roll < 0.55 and options:
            args.append(f"{rng.choice(options)}={rng.choice(HOSTILE_VALUES)}")
        else:
            args.append(rng.choice(HOSTILE_VALUES))
    return args


@pytest.mark.parametrize("command", sorted(_commands()))
def test_random_arguments_never_end_in_a_traceback_or_a_hang(tmp_path: Path, command: str) -> None:
    options = _commands()[command]
    project = write_project(
        tmp_path / "p",
        f"id: fz\nsteps:\n  - {{id: s, image: {BUSYBOX}, cmd: echo > /output/o}}\n  - {{id: t, image: {BUSYBOX}, inputs: [{{step: s}}], cmd: 'true'}}\n",
    )
    (project / "one.yaml").write_text(f"id: e\nimage: {BUSYBOX}\ncmd: 'true'\n")
    env = {k: v for k, v in os.environ.items() if k != "PIPEX_DEBUG"}
    env.update(PIPEX_STORE=str(tmp_path / "store"), DOCKER_HOST="unix:///nonexistent/docker.sock", NO_COLOR="1")
    seed = int(os.environ.get("PIPEX_RELIABILITY_SEED", "0")) or random.randrange(1 << 30)
    rng = random.Random(f"{seed}-{command}")
    for _ in range(iterations("argv_cases", 6)):
        args = [command, *_argv(rng, options)]
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pipex", *args], cwd=project, env=env, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, errors="replace", timeout=30,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"pipex {args!r} hung (seed {seed})")
        assert "Traceback" not in done.stderr, (args, seed, done.stderr[-2000:])
        assert done.returncode in (0, 1, 2, 130), (args, seed, done.returncode, done.stderr[-500:])
