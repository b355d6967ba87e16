"""Path escapes: host paths, ids and workspace names that leave their place, and hostile step outputs."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import (
    BUSYBOX,
    assert_one_line_errors,
    PipexProcess,
    chown_tree,
    run_pipex,
    staging_entries,
    verify_store,
    write_project,
)

OK_STEP = f"  - {{id: ok, image: {BUSYBOX}, cmd: echo ok > /output/ok}}\n"


def _link_outside(root: Path) -> None:
    """A symlink inside the project pointing at the project's parent."""
    os.symlink(root.parent, root / "escape")


SPEC_ESCAPES = [
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', mounts: [{{host: ../../etc, container: /x}}]}}\n",
        None,
        "'../../etc' is outside the project root",
        id="mount-dotdot",
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', sources: [{{host: /etc, container: /x}}]}}\n",
        None,
        "must be a path relative to the project root, got '/etc'",
        id="source-absolute",
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', mounts: [{{host: escape, container: /x}}]}}\n",
        _link_outside,
        "'escape' resolves outside the project root (through a symlink)",
        id="mount-symlink-outside",
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', sources: [{{host: escape/etc, container: /x}}]}}\n",
        _link_outside,
        "resolves outside the project root",
        id="source-through-symlink",
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', envFile: ../../../etc/os-release}}\n",
        None,
        "'../../../etc/os-release' is outside the project root",
        id="env-file-dotdot",
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', envFile: escape/x.env}}\n",
        _link_outside,
        "outside the project root",
        id="env-file-through-symlink",
    ),
    pytest.param(
        "  - {id: s, uses: python, with: {run: 'print(1)', src: ../..}}\n", None, "is outside the project root", id="kit-src-dotdot"
    ),
    pytest.param(f"  - {{id: ../x, image: {BUSYBOX}, cmd: 'true'}}\n", None, "steps[1].id: invalid id", id="step-id-dotdot"),
    pytest.param(f"  - {{id: a/b, image: {BUSYBOX}, cmd: 'true'}}\n", None, "steps[1].id: invalid id", id="step-id-slash"),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', inputs: [{{step: ../ok}}]}}\n", None, "steps[1].inputs[0].step", id="input-dotdot"
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', caches: [{{name: ../c, path: /c}}]}}\n",
        None,
        "steps[1].caches[0].name",
        id="cache-name-dotdot",
    ),
    pytest.param(
        f"  - {{id: s, image: {BUSYBOX}, cmd: 'true', outputPath: /out/../../etc}}\n", None, "must not contain '..'", id="output-path-dotdot"
    ),
]


@pytest.mark.parametrize(("step", "prepare", "expected"), SPEC_ESCAPES)
def test_escaping_spec_is_refused_before_anything_runs(
    tmp_path: Path, step: str, prepare: Callable[[Path], None] | None, expected: str
) -> None:
    root = write_project(tmp_path / "project", "id: esc\nsteps:\n" + OK_STEP + step)
    if prepare is not None:
        prepare(root)
    store = tmp_path / "store"
    process = run_pipex("build", "-f", str(root), "--store", str(store))
    assert process.proc.returncode == 2, process.stderr
    assert_one_line_errors(process.stderr)
    assert expected in process.stderr
    # Refused while loading: the store was never written to.
    assert not (store / "runs").exists() or not os.listdir(store / "runs")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "x\ny"])
def test_escaping_workspace_name_is_refused(tmp_path: Path, name: str) -> None:
    root = write_project(tmp_path / "project", "id: esc\nsteps:\n" + OK_STEP)
    store = tmp_path / "store"
    process = run_pipex("build", "-f", str(root), "--store", str(store), "--workspace", name)
    assert process.proc.returncode == 2, process.stderr
    assert_one_line_errors(process.stderr)
    assert "invalid workspace name" in process.stderr
    assert not (tmp_path / "x").exists() and not (store.parent.parent / "x").exists()


def test_escaping_workspace_in_config_is_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", "id: esc\nsteps:\n" + OK_STEP)
    with open(root / ".pipex.yml", "a") as config:
        config.write("workspace: ../../x\n")
    process = run_pipex("build", "-f", str(root), "--store", str(tmp_path / "store"))
    assert process.proc.returncode == 2, process.stderr
    assert_one_line_errors(process.stderr)


# -- hostile outputs (a container writes them) --------------------------------------------------


def _build_json(root: Path, store: Path, *targets: str, user: str | None = None) -> PipexProcess:
    """``pipex build --json -k`` of ``root`` on ``store``, run to completion."""
    return run_pipex("build", "-f", str(root), "--store", str(store), "--json", "-k", *targets, user=user)


REFUSED_OUTPUTS = [
    pytest.param("ln -s /etc/passwd /output/pw", "output symlink 'pw' -> '/etc/passwd' is absolute", id="link-etc-passwd"),
    pytest.param("ln -s ../../.. /output/up", "output symlink 'up' -> '../../..' points outside the output", id="link-dotdot"),
    pytest.param(
        "mkdir /output/d && ln -s .. /output/d/self && ln -s d/self/../.. /output/sneaky",
        "points outside the output",
        id="link-through-inner-link",
    ),
    pytest.param("mkfifo /output/f", "output 'f' is a fifo", id="fifo"),
    pytest.param("mknod /output/null c 1 3", "output 'null' is a device", id="char-device"),
    pytest.param("mknod /output/blk b 7 0", "output 'blk' is a device", id="block-device"),
]


@pytest.mark.docker
@pytest.mark.parametrize(("cmd", "expected"), REFUSED_OUTPUTS)
def test_hostile_output_fails_the_step_clearly_and_store_stays_valid(tmp_path: Path, store: Path, cmd: str, expected: str) -> None:
    pipeline = f"""\
    id: hostile
    steps:
      - {{id: good, image: {BUSYBOX}, cmd: echo fine > /output/fine}}
      - {{id: bad, image: {BUSYBOX}, cmd: "echo x > /output/x && {cmd}"}}
    """
    root = write_project(tmp_path / "project", pipeline)
    process = _build_json(root, store)
    assert process.proc.returncode == 1, process.stderr
    assert "Traceback" not in process.stderr
    failed = process.events.of("STEP_FAILED")
    assert [e["step"] for e in failed] == ["bad"], process.stdout
    assert expected in failed[0]["reason"]
    assert "\n" not in failed[0]["reason"]
    assert process.events.steps("STEP_FINISHED") == {"good"}
    # Nothing of the refused output is recorded or referenced; its staging is gone.
    assert os.listdir(store / "workspaces" / "hostile" / "steps") == ["good"]
    assert staging_entries(store) == []
    verify_store(store)
    # The human renderer names the step and the reason too.
    human = run_pipex("build", "-f", str(root), "--store", str(store), "bad")
    assert human.proc.returncode == 1
    assert any("bad" in line and expected in line for line in human.stdout.splitlines() + human.stderr.splitlines())


def _tree_of(store: Path, workspace: str, step: str) -> dict:
    """The tree JSON (plus its ``id``) of the run ``workspace``'s ref for ``step`` points at."""
    meta = json.loads(((store / "workspaces" / workspace / "steps" / step).resolve() / "meta.json").read_text())
    tree = meta["output_tree"]
    return json.loads((store / "trees" / tree[:2] / f"{tree[2:]}.json").read_text()) | {"id": tree}


KEPT_OUTPUTS = f"""\
id: kept
steps:
  - id: odd
    image: {BUSYBOX}
    cmd: >-
      cp /bin/busybox /output/suid && chmod 6755 /output/suid &&
      mkdir /output/sgid && chmod 3775 /output/sgid &&
      printf nl > "/output/$(printf 'new\\nline')" &&
      printf bad > "/output/$(printf 'bad\\377utf8')" &&
      printf tab > "/output/$(printf 'tab\\there')" &&
      ln -s "$(printf 'new\\nline')" /output/link-to-newline
  - id: reader
    image: {BUSYBOX}
    inputs: [{{step: odd}}]
    cmd: >-
      cat "/input/odd/$(printf 'new\\nline')" "/input/odd/$(printf 'bad\\377utf8')" /input/odd/link-to-newline > /output/read &&
      stat -c %a /input/odd/suid /input/odd/sgid > /output/modes
"""


def _check_kept_outputs(store: Path) -> None:
    """The odd outputs of KEPT_OUTPUTS are stored byte-exact, without setuid/setgid/sticky bits."""
    tree = _tree_of(store, "kept", "odd")
    by_path = {e["path"].encode() if "path" in e else base64.b64decode(e["path_b64"]): e for e in tree["entries"]}
    assert set(by_path) == {b"suid", b"sgid", b"new\nline", b"bad\xffutf8", b"tab\there", b"link-to-newline"}
    assert by_path[b"suid"]["mode"] == 0o755
    assert by_path[b"sgid"]["mode"] == 0o775
    assert by_path[b"link-to-newline"]["target"] == "new\nline"
    checkout = store / "checkouts" / tree["id"]
    names = set(os.listdir(os.fsencode(checkout)))
    assert names == set(by_path)
    assert (checkout / os.fsdecode(b"bad\xffutf8")).read_bytes() == b"bad"
    for name in ("suid", "sgid"):
        mode = os.lstat(checkout / name).st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), oct(mode)
    for path in (store / "objects").rglob("*"):
        assert not path.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID), path
    reader = _tree_of(store, "kept", "reader")
    checkout = store / "checkouts" / reader["id"]
    assert (checkout / "read").read_bytes() == b"nlbadnl"
    # Inside the consuming container too: read-only, and no special bit survived.
    assert all(len(mode) == 3 for mode in (checkout / "modes").read_text().split()), (checkout / "modes").read_text()


@pytest.mark.docker
def test_setuid_is_dropped_and_odd_names_are_kept_exactly(tmp_path: Path, store: Path) -> None:
    root = write_project(tmp_path / "project", KEPT_OUTPUTS)
    process = _build_json(root, store)
    assert process.proc.returncode == 0, process.stderr
    run_pipex("build", "-f", str(root), "--store", str(store))  # materialises checkouts via a cached build
    # Check out both trees (the reader's is not an input of anything).
    from pipex.store import Store

    opened = Store.open(store)
    for step in ("odd", "reader"):
        opened.checkout(_tree_of(store, "kept", step)["id"])
    _check_kept_outputs(store)
    verify_store(store)


@pytest.mark.docker
def test_source_symlink_to_host_file_is_copied_as_a_link_not_its_target(tmp_path: Path, store: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("HOST-ONLY-CONTENT\n")
    pipeline = f"""\
    id: srclink
    steps:
      - id: s
        image: {BUSYBOX}
        sources: [{{host: data, container: /data}}]
        cmd: "readlink /data/leak > /output/target; cat /data/leak > /output/content 2>/dev/null || true"
    """
    root = write_project(tmp_path / "project", pipeline, {"data/ok": "ok\n"})
    os.symlink(secret, root / "data" / "leak")
    process = _build_json(root, store)
    assert process.proc.returncode == 0, process.stderr
    tree = _tree_of(store, "srclink", "s")
    from pipex.store import Store

    checkout = Store.open(store).checkout(tree["id"])
    assert (checkout / "target").read_text().strip() == str(secret)
    assert "HOST-ONLY-CONTENT" not in (checkout / "content").read_text()


@pytest.mark.docker
@pytest.mark.slow
def test_hostile_outputs_as_unprivileged_user(shared_tmp: Path, unprivileged: str) -> None:
    """Root-owned hostile output, pipex as a normal user: refused or sanitised, nothing left behind."""
    pipeline = KEPT_OUTPUTS + f"""\
  - {{id: escape, image: {BUSYBOX}, cmd: "echo x > /output/x && ln -s /etc/passwd /output/pw"}}
  - {{id: fifo, image: {BUSYBOX}, cmd: "mkfifo /output/f"}}
"""
    root = write_project(shared_tmp / "project", pipeline)
    store = shared_tmp / "store"
    chown_tree(shared_tmp, unprivileged)
    try:
        process = _build_json(root, store, user=unprivileged)
        assert process.proc.returncode == 1, process.stderr
        assert "Traceback" not in process.stderr
        reasons = {e["step"]: e["reason"] for e in process.events.of("STEP_FAILED")}
        assert set(reasons) == {"escape", "fifo"}, process.stdout
        assert "is absolute" in reasons["escape"] and "is a fifo" in reasons["fifo"]
        from pipex.store import Store

        opened = Store.open(store)
        for step in ("odd", "reader"):
            opened.checkout(_tree_of(store, "kept", step)["id"])
        _check_kept_outputs(store)
        # Root-owned files the container wrote were handed back: staging is empty.
        assert staging_entries(store) == []
        verify_store(store, user=unprivileged)
    finally:
        from .conftest import remove_containers

        remove_containers(store)


@pytest.mark.docker
def test_owner_unreadable_output_is_stored_as_unprivileged_user(shared_tmp: Path, unprivileged: str) -> None:
    pipeline = f"""\
    id: modes
    steps:
      - {{id: m, image: {BUSYBOX}, cmd: "mkdir /output/locked && echo x > /output/locked/f && chmod 000 /output/locked /output/locked/f"}}
    """
    root = write_project(shared_tmp / "project", pipeline)
    store = shared_tmp / "store"
    chown_tree(shared_tmp, unprivileged)
    try:
        process = _build_json(root, store, user=unprivileged)
        assert "Traceback" not in process.stderr
        assert staging_entries(store) == []
        assert process.proc.returncode == 0, process.stdout
    finally:
        from .conftest import remove_containers

        remove_containers(store)


# A writer left in the background keeps making root-owned, mode 000 directories.
_LINGERING_WRITER = (
    "(i=0; while :; do i=$((i+1)); mkdir -p /output/late$i/d && echo x > /output/late$i/d/f"
    " && chmod 000 /output/late$i/d/f /output/late$i/d /output/late$i; done) & sleep 0.5; echo done > /output/a"
)


@pytest.mark.docker
@pytest.mark.parametrize("setup", [None, "true"], ids=["direct", "keeper"])
def test_a_background_writer_left_by_a_step_is_stopped_before_the_output_is_handed_back(
    shared_tmp: Path, unprivileged: str, setup: str | None
) -> None:
    """As a normal user: the step's leftovers die first, so nothing root-owned stays in staging."""
    setup_line = f"\n        setup: {{cmd: '{setup}'}}" if setup else ""
    pipeline = f"""\
    id: lingering
    steps:
      - id: w
        image: {BUSYBOX}{setup_line}
        cmd: "{_LINGERING_WRITER}"
    """
    root = write_project(shared_tmp / "project", pipeline)
    store = shared_tmp / "store"
    chown_tree(shared_tmp, unprivileged)
    try:
        for _ in range(3):
            process = _build_json(root, store, user=unprivileged)
            assert "Traceback" not in process.stderr, process.stderr
            assert process.proc.returncode == 0, process.stdout + process.stderr
            assert staging_entries(store) == [], "root-owned garbage left in staging"
            run_pipex("rm-step", "lingering", "w", "--store", str(store), user=unprivileged)
        verify_store(store, user=unprivileged)
    finally:
        from .conftest import remove_containers

        remove_containers(store)
