"""verify: re-hash every object, re-check every tree, run and ref; with repair, take damage out of service.

Repair never tries to fix content. It moves corrupt objects and trees into
``quarantine/`` (for a human to look at), removes trees that name missing or
corrupt objects, checkouts of those trees (they hard-link the same damaged
inodes), runs whose meta or tree is damaged, and every ref or pin naming
such a run — so the next build sees those steps as never built and runs
them again, recreating what was lost.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipex.errors import StoreError
from pipex.store._fs import file_kind, fsync_dir, read_regular_file, rmtree, show_path, store_errors, walk_entries
from pipex.store.objects import hash_file, is_oid
from pipex.store.refs import walk_refs
from pipex.store.runs import load_meta
from pipex.store.store import Store
from pipex.store.trees import EntryType, Tree, decode_tree

__all__ = ["ProblemKind", "Problem", "VerifyReport", "verify"]


class ProblemKind(enum.Enum):
    """What verify found wrong."""

    CORRUPT_OBJECT = "corrupt-object"
    MISSING_OBJECT = "missing-object"
    CORRUPT_TREE = "corrupt-tree"
    MISSING_TREE = "missing-tree"
    DAMAGED_RUN = "damaged-run"
    DANGLING_REF = "dangling-ref"
    BROKEN_REF = "broken-ref"  # not a link where a ref should be (a directory, a file)
    DAMAGED_WORKSPACE = "damaged-workspace"  # workspace.json unreadable
    DAMAGED_CHECKOUT = "damaged-checkout"  # a checkout that differs from its tree
    STRAY_FILE = "stray-file"  # a fifo, device or socket among objects or trees


@dataclass(frozen=True)
class Problem:
    """One piece of damage: its kind, the name of the damaged thing, and a human detail."""

    kind: ProblemKind
    name: str
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    """What verify checked, what it found, and (with ``repair``) what it took out of service."""

    objects: int
    bytes: int
    trees: int
    runs: int
    refs: int
    problems: tuple[Problem, ...] = ()
    repaired: bool = False
    quarantined: int = 0
    runs_dropped: int = 0
    refs_dropped: int = 0
    trees_dropped: int = 0
    checkouts_dropped: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    not_fetched: int = 0  # objects of lazily pulled runs still on the remote: not damage

    @property
    def ok(self) -> bool:
        """True when nothing is damaged."""
        return not self.problems


def verify(store: Store, *, repair: bool = False) -> VerifyReport:
    """Check the whole store; with ``repair``, quarantine and drop damaged things so they rebuild."""
    lock = store.exclusive_lock() if repair else store.shared_lock()
    with lock, store_errors("verify failed"):
        return _verify(store, repair)


def _lazily_pulled_trees(store: Store) -> set[str]:
    """Output trees of runs pulled lazily from a remote cache: their objects may be elsewhere still."""
    trees: set[str] = set()
    for run_id in store.runs():
        try:
            meta = load_meta(run_id, store.root / "runs" / run_id)
        except StoreError:
            continue
        if meta.pulled_from and meta.output_tree:
            trees.add(meta.output_tree)
    return trees


def _verify(store: Store, repair: bool) -> VerifyReport:
    root = store.root
    problems: list[Problem] = []

    # Objects: the name must be the hash of the content.
    good_objects: set[str] = set()
    corrupt_objects: list[str] = []
    n_objects = n_bytes = 0
    for prefix in sorted(os.listdir(root / "objects")):
        with os.scandir(root / "objects" / prefix) as it:
            for entry in it:
                key = prefix + entry.name
                oid = key[:-2] if key.endswith(".x") else key
                if not is_oid(oid):
                    continue  # not an object name: nothing references it, gc sweeps it
                n_objects += 1
                try:
                    info = entry.stat(follow_symlinks=False)
                    n_bytes += info.st_size
                    # Never open what is not a regular file: a fifo would block verify forever.
                    actual = hash_file(entry.path) if stat.S_ISREG(info.st_mode) else f"{file_kind(info.st_mode)}, not a file"
                except OSError as error:
                    actual = f"unreadable: {error.strerror}"
                if actual == oid:
                    good_objects.add(key)
                else:
                    corrupt_objects.append(key)
                    problems.append(Problem(ProblemKind.CORRUPT_OBJECT, key, f"content hashes to {actual}"))

    # Trees: the name must be the hash, the format valid, every object present and sound.
    bad_trees: set[str] = set()
    corrupt_trees: list[str] = []
    pulled_trees = _lazily_pulled_trees(store)
    not_fetched: set[str] = set()
    n_trees = 0
    for prefix in sorted(os.listdir(root / "trees")):
        for name in sorted(os.listdir(root / "trees" / prefix)):
            tree_id = prefix + name.removesuffix(".json")
            if not name.endswith(".json") or not is_oid(tree_id):
                continue
            n_trees += 1
            try:
                tree = decode_tree(tree_id, read_regular_file(root / "trees" / prefix / name))
            except (StoreError, OSError) as error:
                corrupt_trees.append(tree_id)
                bad_trees.add(tree_id)
                problems.append(Problem(ProblemKind.CORRUPT_TREE, tree_id, str(error)))
                continue
            for item in tree.entries:
                if item.oid is None:
                    continue
                key = item.oid + (".x" if item.executable else "")
                if key not in good_objects and key not in corrupt_objects and _sound(store, key, item.oid):
                    good_objects.add(key)  # stored by a build after the object pass
                if key not in good_objects and tree_id in pulled_trees and key not in corrupt_objects:
                    not_fetched.add(key)
                elif key not in good_objects:
                    bad_trees.add(tree_id)
                    if key not in corrupt_objects:
                        where = item.path.decode("utf-8", "backslashreplace")
                        problems.append(Problem(ProblemKind.MISSING_OBJECT, key, f"named by {where!r} in tree {tree_id}"))

    # Runs: meta readable, output tree present and sound.
    bad_runs: set[str] = set()
    runs = store.runs()
    for run_id in runs:
        try:
            meta = load_meta(run_id, root / "runs" / run_id)
        except StoreError as error:
            bad_runs.add(run_id)
            problems.append(Problem(ProblemKind.DAMAGED_RUN, run_id, str(error)))
            continue
        output_tree = meta.output_tree
        if output_tree is None:
            continue
        if not is_oid(output_tree) or not store.tree_path(output_tree).is_file():
            bad_runs.add(run_id)
            problems.append(Problem(ProblemKind.MISSING_TREE, run_id, f"output tree {output_tree} is missing"))
        elif output_tree in bad_trees:
            bad_runs.add(run_id)  # the tree's own problem is already reported

    # Refs and pins: they must name a run.
    bad_refs: list[tuple[str, str, str]] = []
    n_refs = 0
    for ref in walk_refs(root):
        n_refs += 1
        where = f"{ref.workspace}/{ref.kind}/{ref.step}"
        if not ref.is_link:
            bad_refs.append((ref.workspace, ref.kind, ref.step))
            what = file_kind(os.lstat(ref.path).st_mode) if ref.path.exists() else "missing"
            problems.append(Problem(ProblemKind.BROKEN_REF, where, f"is {what}, not a ref link"))
        elif ref.run_id is None or not (root / "runs" / ref.run_id).is_dir():
            bad_refs.append((ref.workspace, ref.kind, ref.step))
            problems.append(Problem(ProblemKind.DANGLING_REF, where, f"names missing run {ref.run_id}"))
        elif ref.run_id in bad_runs:
            bad_refs.append((ref.workspace, ref.kind, ref.step))
    bad_pins = [p for p in store.pins() if p in bad_runs or not (root / "runs" / p).is_dir()]
    for pin in bad_pins:
        if pin not in bad_runs:
            problems.append(Problem(ProblemKind.DANGLING_REF, f"pin:{pin}", "names a missing run"))

    bad_workspaces = _check_workspaces(store, problems)
    bad_checkouts = _check_checkouts(store, bad_trees, problems)

    counts: dict[str, int] = {}
    for problem in problems:
        counts[problem.kind.value] = counts.get(problem.kind.value, 0) + 1
    report = VerifyReport(
        objects=n_objects, bytes=n_bytes, trees=n_trees, runs=len(runs), refs=n_refs, problems=tuple(problems), counts=counts,
        not_fetched=len(not_fetched),
    )
    if not repair or not problems:
        return report
    repaired = _repair(store, report, corrupt_objects, corrupt_trees, bad_trees, bad_runs, bad_refs, bad_pins)
    for ws in bad_workspaces:
        # Rewritten by the next build of that project (an unknown root is adopted).
        with contextlib.suppress(FileNotFoundError):
            rmtree(store.retire(root / "workspaces" / ws / "workspace.json"))
    for tree_id in bad_checkouts:
        with contextlib.suppress(FileNotFoundError):
            rmtree(store.retire(root / "checkouts" / tree_id))  # made again on next use
    return repaired


def _check_workspaces(store: Store, problems: list[Problem]) -> list[str]:
    """Workspaces whose workspace.json is unreadable (builds of them would fail)."""
    bad = []
    for ws in store.workspaces():
        path = store.root / "workspaces" / ws / "workspace.json"
        try:
            doc = json.loads(read_regular_file(path))
            fine = isinstance(doc, dict) and isinstance(doc.get("project_root"), str)
            reason = "has no project_root"
        except FileNotFoundError:
            continue
        except (OSError, ValueError, UnicodeDecodeError) as error:
            fine, reason = False, getattr(error, "strerror", None) or "is not JSON"
        if not fine:
            bad.append(ws)
            problems.append(Problem(ProblemKind.DAMAGED_WORKSPACE, ws, f"workspace.json {reason}"))
    return bad


def _check_checkouts(store: Store, bad_trees: set[str], problems: list[Problem]) -> list[str]:
    """Checkouts that are not exactly their tree (an entry missing, added, or of another kind)."""
    bad: list[str] = []
    root = store.root / "checkouts"
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return bad
    for tree_id in names:
        if not is_oid(tree_id) or tree_id in bad_trees:
            continue  # gc's (not a checkout name) or already dropped with its tree
        path = root / tree_id
        try:
            tree = store.read_tree(tree_id)
        except StoreError:
            continue  # a checkout of a tree gc collected: gc removes it
        why = _checkout_difference(path, tree)
        if why is not None:
            bad.append(tree_id)
            problems.append(Problem(ProblemKind.DAMAGED_CHECKOUT, tree_id, why))
    return bad


def _checkout_difference(path: Path, tree: Tree) -> str | None:
    """How the checkout at ``path`` differs from ``tree`` (None: it does not)."""
    if path.is_symlink() or not path.is_dir():
        return "is not a directory"
    expected = {entry.path: entry for entry in tree.entries}
    base = os.fsencode(path)
    seen = 0
    for found, info in walk_entries(base):
        rel = found[len(base) + 1 :]
        entry = expected.get(rel)
        if entry is None:
            return f"has {show_path(rel)!r}, which its tree does not"
        seen += 1
        kind = {EntryType.FILE: stat.S_ISREG, EntryType.DIR: stat.S_ISDIR, EntryType.LINK: stat.S_ISLNK}[entry.type]
        if not kind(info.st_mode):
            return f"{show_path(rel)!r} is {file_kind(info.st_mode)}, its tree says {entry.type.value}"
        if entry.type is EntryType.FILE and info.st_size != entry.size:
            return f"{show_path(rel)!r} has {info.st_size} bytes, its tree says {entry.size}"
    if seen != len(expected):
        return f"misses {len(expected) - seen} entries of its tree"
    return None


def _sound(store: Store, key: str, oid: str) -> bool:
    try:
        return hash_file(store.objects.path(oid, key.endswith(".x"))) == oid
    except OSError:
        return False


def _repair(
    store: Store,
    report: VerifyReport,
    corrupt_objects: list[str],
    corrupt_trees: list[str],
    bad_trees: set[str],
    bad_runs: set[str],
    bad_refs: list[tuple[str, str, str]],
    bad_pins: list[str],
) -> VerifyReport:
    root = store.root
    stamp = time.strftime("%Y%m%dT%H%M%S")
    quarantine = root / "quarantine" / stamp
    quarantined = 0
    # Order: refs first, then runs, trees, objects — at every step the store is consistent.
    for ws, kind, step in bad_refs:
        store.remove_ref(ws, step, kind=kind)
    for pin in bad_pins:
        store.unpin(pin)
    for run_id in sorted(bad_runs):
        rmtree(store.retire(root / "runs" / run_id))
    if bad_runs:
        fsync_dir(root / "runs")
    checkouts = 0
    for tree_id in sorted(bad_trees):
        checkout = root / "checkouts" / tree_id
        if checkout.exists():
            rmtree(store.retire(checkout))
            checkouts += 1
    for tree_id in sorted(bad_trees):
        path = store.tree_path(tree_id)
        if tree_id in corrupt_trees:
            (quarantine / "trees").mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.rename(path, quarantine / "trees" / path.name)
                quarantined += 1
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    for key in corrupt_objects:
        (quarantine / "objects").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(store.objects.path(key.removesuffix(".x"), key.endswith(".x")), quarantine / "objects" / key)
            quarantined += 1
    return VerifyReport(
        objects=report.objects,
        bytes=report.bytes,
        trees=report.trees,
        runs=report.runs,
        refs=report.refs,
        problems=report.problems,
        repaired=True,
        quarantined=quarantined,
        runs_dropped=len(bad_runs),
        refs_dropped=len(bad_refs) + len(bad_pins),
        trees_dropped=len(bad_trees),
        checkouts_dropped=checkouts,
        counts=report.counts,
        not_fetched=report.not_fetched,
    )
