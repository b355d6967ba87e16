"""One build's hold on a store and a workspace: the locks, signals -> cancel, the executor on first need.

``pipex build`` and ``pipex exec`` both run inside a ``BuildSession``:

- the store lock, shared, for the whole build (gc and ``verify --repair``
  take it exclusively), and the workspace lock (builds of one workspace are
  serialised; ``rm`` and ``clean`` test it); each says so when it must wait;
- SIGINT, SIGTERM and SIGHUP set ``cancel`` and stop every container the
  session started (restored afterwards);
- the executor, created only when a step really has to run, so an all-cached
  build never touches Docker; creating it removes the leftovers of killed
  builds (containers whose starting process is gone);
- image ids pulled for steps the planner could not resolve, once per
  reference.

The remote cache and cluster backends plug in here: a session is where a
build gets its executor from.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from pipex.errors import DockerUnavailableError, LockBusyError, PipexError
from pipex.events import Event, EventKind, EventSink
from pipex.store.locks import workspace_lock_name
from pipex.store.owners import container_owner_lives

if TYPE_CHECKING:
    from pipex.executor.base import Executor
    from pipex.remote.cache import RemoteCache
    from pipex.store.store import Store

__all__ = ["BuildSession", "ExecutorFactory"]

ExecutorFactory = Callable[[], "Executor"]


class BuildSession:
    """The store, workspace, event sink and cancel flag of one build, and the executor it made.

    ``ephemeral`` (``exec --ephemeral``): the session holds no workspace lock,
    so it must not take a live build's containers of the workspace for
    leftovers: it removes only containers whose starting process is gone.
    """

    def __init__(
        self,
        store: Store,
        workspace: str,
        *,
        executor_factory: ExecutorFactory,
        sink: EventSink | None = None,
        cancel: threading.Event | None = None,
        ephemeral: bool = False,
        remote: RemoteCache | None = None,
    ) -> None:
        """Nothing is locked or contacted until the context managers or ``executor`` are used.

        ``remote``: the shared cache hits come from and runs go to; it becomes
        the store's fetcher of missing objects.
        """
        self.store = store
        self.workspace = workspace
        self.sink: EventSink = sink or (lambda event: None)
        self.cancel = cancel or threading.Event()
        self.ephemeral = ephemeral
        self._executor_factory = executor_factory
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()
        self._image_ids: dict[str, str] = {}
        self._image_locks: dict[str, threading.Lock] = {}
        #: Set when the engine went away: no step can run, the build ends with exit 2.
        self.fatal: PipexError | None = None
        self.remote = remote
        if remote is not None:
            store.fetcher = remote.fetch_objects

    def warn(self, message: str) -> None:
        """Report a WARNING event."""
        self.sink(Event(EventKind.WARNING, data={"message": message}))

    # -- locks and signals ---------------------------------------------------------------

    @contextmanager
    def store_lock(self) -> Iterator[None]:
        """Hold the store lock shared; say so when a gc (or verify --repair) makes the build wait."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.store.shared_lock(blocking=False))
            except LockBusyError:
                self.warn("pipex gc or verify --repair is running on this store; waiting for it")
                stack.enter_context(self.store.shared_lock())
            yield

    @contextmanager
    def workspace_lock(self) -> Iterator[None]:
        """Serialise builds of the workspace; say so when waiting for another build."""
        name = workspace_lock_name(self.workspace)
        with ExitStack() as stack:
            try:
                stack.enter_context(self.store.lock(name, blocking=False))
            except LockBusyError:
                self.warn(f"another build of workspace '{self.workspace}' is running; waiting for it")
                stack.enter_context(self.store.lock(name))
            yield

    @contextmanager
    def running(self) -> Iterator[None]:
        """While steps run: signals cancel the build and stop its containers; the executor is closed at the end."""
        try:
            with _signals_cancel(self.cancel, self.stop_all):
                yield
        finally:
            self.close()

    # -- the executor, made on first need ----------------------------------------------

    @property
    def executor(self) -> Executor:
        """The executor; created (and connected) the first time a step must run."""
        with self._executor_lock:
            if self.fatal is not None:
                raise self.fatal
            if self._executor is None:
                executor = self._executor_factory()
                keep = _spare_live_owners if self.ephemeral else self._not_a_leftover
                try:
                    removed = executor.remove_leftovers({"pipex.store": str(self.store.root)}, keep)
                except DockerUnavailableError as error:
                    # No engine to start with: no step can run (a daemon lost mid-step
                    # is that step's failure instead). The build ends with exit 2.
                    self.fatal = self.fatal or error
                    executor.close()
                    raise
                self._executor = executor
                if removed and not self.ephemeral:
                    # A killed build's container was still writing into its staging
                    # dir when Store.open swept it; now that it is gone, sweep again.
                    self.store.clear_stale_staging()
            return self._executor

    def _not_a_leftover(self, labels: Mapping[str, str]) -> bool:
        """Spare a container of this store whose starting process lives (any workspace's).

        Containers of older pipex versions carry no owner: only this
        workspace's are ours to judge (a build holds the workspace lock).
        """
        lives = container_owner_lives(labels)
        return lives if lives is not None else labels.get("pipex.workspace") != self.workspace

    @property
    def executor_started(self) -> bool:
        """Whether this session has created an executor (and so may have containers)."""
        return self._executor is not None

    def image_id(self, ref: str) -> str:
        """The id of image ``ref``, pulled if need be (once per reference, with IMAGE_PULL events)."""
        with self._executor_lock:
            lock = self._image_locks.setdefault(ref, threading.Lock())
        with lock:
            if ref not in self._image_ids:

                def progress(status: str) -> None:
                    self.sink(Event(EventKind.IMAGE_PULL, data={"image": ref, "status": status}))

                self._image_ids[ref] = self.executor.ensure_image(ref, progress, self.cancel)
                self.sink(Event(EventKind.IMAGE_PULL, data={"image": ref, "status": "ready", "done": True}))
            return self._image_ids[ref]

    def remove_killed_builds_containers(self) -> None:
        """A killed build left staging behind: remove its containers even if nothing ran.

        Creating the executor removes this workspace's leftovers; an all-cached
        build contacts Docker only in this case, and only on a best-effort basis.
        """
        if self._executor is not None or not self.store.found_stale_staging:
            return
        try:
            self.executor
        except PipexError:
            pass

    def stop_all(self) -> None:
        """Stop every container this session started (from a signal handler's thread)."""
        if self._executor is not None:
            self._executor.stop_all()

    def close(self) -> None:
        """Close the executor, if one was made."""
        if self._executor is not None:
            self._executor.close()


def _spare_live_owners(labels: Mapping[str, str]) -> bool:
    """Containers whose starting process is gone are garbage; older pipex's (no owner) are spared."""
    return container_owner_lives(labels) is not False


@contextmanager
def _signals_cancel(cancel: threading.Event, on_cancel: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP (the terminal closed) set ``cancel`` and call ``on_cancel`` in a thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        cancel.set()
        threading.Thread(target=on_cancel, name="pipex-cancel", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
