"""Hostile outputs made by real containers (issue 10): capabilities, deep, wide, long names, link cycles, sparse and huge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipex.store import Store

from .conftest import BUSYBOX, PYTHON, chown_tree, run_pipex, staging_entries, verify_store, write_project

pytestmark = pytest.mark.docker

# security.capability v2, effective, permitted = CAP_SETUID: what `setcap cap_setuid+ep` writes.
SET_CAP = (
    "import os, shutil, struct; shutil.copy('/bin/sh', '/output/rootsh'); "
    "os.setxattr('/output/rootsh', 'security.capability', struct.pack('<IIIII', 0x02000001, 1 << 7, 0, 0, 0)); "
    "os.setxattr('/output/rootsh', 'user.note', b'x')"
)


def _checkout(store: Path, workspace: str, step: str) -> Path:
    opened = Store.open(store)
    run = opened.get_ref(workspace, step)
    assert run is not None, f"no run of {step}"
    return opened.checkout(opened.read_run(run).meta.output_tree)


def test_file_capabilities_set_in_a_container_never_reach_the_store(shared_tmp: Path, unprivileged: str) -> None:
    """As a non-root user: the stored executable carries no capability, so running it grants nothing."""
    pipeline = f"id: caps\nsteps:\n  - {{id: s, image: {PYTHON}, cmd: [python3, -c, \"{SET_CAP}\"]}}\n"
    root = write_project(shared_tmp / "project", pipeline)
    store = shared_tmp / "store"
    chown_tree(shared_tmp, unprivileged)
    try:
        done = run_pipex("build", "-f", str(root), "--store", str(store), "--json", user=unprivileged)
        assert done.proc.returncode == 0, done.stderr + done.stdout
        checkout = _checkout(store, "caps", "s")
        assert os.listxattr(checkout / "rootsh") == []
        for path in (store / "objects").rglob("*"):
            if path.is_file():
                assert os.listxattr(path) == [], path
        verify_store(store, user=unprivileged)
    finally:
        from .conftest import remove_containers

        remove_containers(store)


HOSTILE = f"""\
id: hostile
steps:
  - id: deep
    image: {BUSYBOX}
    cmd: cd /output && for i in $(seq 1000); do mkdir d && cd d; done && echo bottom > f
  - id: wide
    image: {BUSYBOX}
    cmd: cd /output && seq 10000 | while read n; do echo $n > f$n; done
  - id: names
    image: {BUSYBOX}
    cmd: cd /output && touch "$(printf 'n%.0s' $(seq 255))" && mkdir -p "$(printf 'x%.0s' $(seq 200))/$(printf 'y%.0s' $(seq 200))"
  - id: cycle
    image: {BUSYBOX}
    cmd: cd /output && ln -s b a && ln -s a b && ln -s self self
  - id: sparse
    image: {BUSYBOX}
    cmd: truncate -s 2G /output/sparse && echo end >> /output/sparse
"""


def test_deep_wide_long_named_cyclic_and_sparse_outputs_are_stored(tmp_path: Path, store: Path) -> None:
    root = write_project(tmp_path / "project", HOSTILE)
    done = run_pipex("build", "-f", str(root), "--store", str(store), "--json", "-k", timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.proc.returncode == 0, [e for e in done.events.items if e.get("event") == "STEP_FAILED"]
    deep = _checkout(store, "hostile", "deep")
    assert (deep / "/".join(["d"] * 1000) / "f").read_text() == "bottom\n"
    assert len(list((_checkout(store, "hostile", "wide")).iterdir())) == 10000
    assert (_checkout(store, "hostile", "names") / ("n" * 255)).exists()
    cycle = _checkout(store, "hostile", "cycle")
    assert os.readlink(cycle / "a") == "b" and os.readlink(cycle / "self") == "self"
    sparse = _checkout(store, "hostile", "sparse") / "sparse"
    assert sparse.stat().st_size == 2 * 1024**3 + 4
    assert sparse.stat().st_blocks * 512 < 64 << 20, "the sparse file was stored dense"
    assert staging_entries(store) == []
    verify_store(store, timeout=600)
    # Everything goes again, the deep tree included, without recursion.
    assert run_pipex("rm", "hostile", "--store", str(store), cwd=root).proc.returncode == 0
    collected = run_pipex("gc", "--json", "--store", str(store), timeout=600)
    assert collected.proc.returncode == 0, collected.stderr
    assert not any((store / "checkouts").iterdir())


def test_an_output_too_deep_for_a_path_fails_its_step_in_one_line_and_the_store_stays_usable(tmp_path: Path, store: Path) -> None:
    pipeline = f"id: toodeep\nsteps:\n  - {{id: s, image: {BUSYBOX}, cmd: cd /output && for i in $(seq 600); do mkdir dddddddddd && cd dddddddddd; done}}\n"
    root = write_project(tmp_path / "project", pipeline)
    done = run_pipex("build", "-f", str(root), "--store", str(store), "--json", timeout=300)
    assert done.proc.returncode == 1, done.stderr
    (failed,) = done.events.of("STEP_FAILED")
    assert failed["reason"].startswith("output refused:"), failed
    assert "\n" not in failed["reason"]
    assert staging_entries(store) == []
    listed = run_pipex("list", "--store", str(store))
    assert listed.proc.returncode == 0, listed.stderr
    verify_store(store)
