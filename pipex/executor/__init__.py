"""How one step runs in a container: the contract here, the Docker engine in ``docker.py`` (imported lazily)."""

from pipex.executor.base import (
    CANCELLED_EXIT_CODE,
    TIMEOUT_EXIT_CODE,
    ExecutionResult,
    Executor,
    Invocation,
    Mount,
    NetworkConfig,
    Phase,
    SecretFile,
)
from pipex.executor.network import detect_network_config

__all__ = [
    "CANCELLED_EXIT_CODE",
    "TIMEOUT_EXIT_CODE",
    "ExecutionResult",
    "Executor",
    "Invocation",
    "Mount",
    "NetworkConfig",
    "Phase",
    "SecretFile",
    "detect_network_config",
]
