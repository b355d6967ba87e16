"""BuildSession without Docker: the executor on first need, whose containers are leftovers, locks that say why they wait."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pipex.errors import DockerUnavailableError
from pipex.events import Event, EventKind
from pipex.engine.session import BuildSession
from pipex.store import Store
from pipex.store.locks import workspace_lock_name
from pipex.store.owners import owner_token

DEAD_OWNER = "999999999.1"


class FakeExecutor:
    """Records what the session asks; ``labels`` are the containers the engine has."""

    def __init__(self, labels: list[dict[str, str]] | None = None, *, down: bool = False) -> None:
        self.containers = labels or []
        self.removed: list[dict[str, str]] = []
        self.down = down
        self.closed = False
        self.stopped = False

    def remove_leftovers(self, labels: dict[str, str], keep: Any = None) -> int:
        if self.down:
            raise DockerUnavailableError("cannot connect to the Docker daemon")
        gone = [c for c in self.containers if not keep(c)]
        self.removed += gone
        return len(gone)

    def ensure_image(self, ref: str, progress: Any = None, cancel: Any = None) -> str:
        if progress is not None:
            progress("Pull complete")
        return "sha256:" + "1" * 64

    def stop_all(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


def _containers() -> list[dict[str, str]]:
    return [
        {"pipex.workspace": "demo", "pipex.owner": owner_token()},  # a live build's (this process)
        {"pipex.workspace": "demo", "pipex.owner": DEAD_OWNER},  # a killed build's
        {"pipex.workspace": "demo"},  # an older pipex's, of this workspace
        {"pipex.workspace": "other"},  # an older pipex's, of another workspace
    ]


def test_no_executor_is_made_until_a_step_needs_one(store: Store) -> None:
    made: list[FakeExecutor] = []
    session = BuildSession(store, "demo", executor_factory=lambda: made.append(FakeExecutor()) or made[-1])
    assert not session.executor_started and made == []
    session.executor
    session.executor
    assert session.executor_started and len(made) == 1


def test_a_build_removes_dead_owners_and_its_own_workspaces_old_containers(store: Store) -> None:
    fake = FakeExecutor(_containers())
    BuildSession(store, "demo", executor_factory=lambda: fake).executor
    assert fake.removed == [{"pipex.workspace": "demo", "pipex.owner": DEAD_OWNER}, {"pipex.workspace": "demo"}]


def test_an_ephemeral_exec_removes_only_containers_whose_owner_is_gone(store: Store) -> None:
    fake = FakeExecutor(_containers())
    BuildSession(store, "demo", executor_factory=lambda: fake, ephemeral=True).executor
    assert fake.removed == [{"pipex.workspace": "demo", "pipex.owner": DEAD_OWNER}]


def test_an_engine_that_does_not_answer_ends_the_build(store: Store) -> None:
    fake = FakeExecutor(down=True)
    session = BuildSession(store, "demo", executor_factory=lambda: fake)
    with pytest.raises(DockerUnavailableError):
        session.executor
    assert fake.closed and isinstance(session.fatal, DockerUnavailableError)
    with pytest.raises(DockerUnavailableError):
        session.executor  # every later step sees the same error, no second connection


def test_an_image_is_pulled_once_with_events(store: Store) -> None:
    events: list[Event] = []
    session = BuildSession(store, "demo", executor_factory=FakeExecutor, sink=events.append)
    assert session.image_id("busybox:1") == session.image_id("busybox:1")
    pulls = [e.data for e in events if e.kind is EventKind.IMAGE_PULL]
    assert pulls == [{"image": "busybox:1", "status": "Pull complete"}, {"image": "busybox:1", "status": "ready", "done": True}]


def test_waiting_for_another_build_of_the_workspace_is_said(store: Store) -> None:
    events: list[Event] = []
    session = BuildSession(store, "demo", executor_factory=FakeExecutor, sink=events.append)
    held = threading.Event()
    release = threading.Event()

    def other_build() -> None:
        with Store.open(store.root).lock(workspace_lock_name("demo")):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=other_build)
    thread.start()
    assert held.wait(10)
    threading.Timer(0.3, release.set).start()
    with session.workspace_lock():
        pass
    thread.join()
    assert [e.data["message"] for e in events] == ["another build of workspace 'demo' is running; waiting for it"]


def test_running_stops_containers_on_sigterm_and_closes_the_executor(store: Store) -> None:
    fake = FakeExecutor()
    session = BuildSession(store, "demo", executor_factory=lambda: fake)
    with session.running():
        session.executor
        os.kill(os.getpid(), 15)
        assert session.cancel.wait(5)
        for _ in range(100):
            if fake.stopped:
                break
            threading.Event().wait(0.01)
    assert fake.stopped and fake.closed
