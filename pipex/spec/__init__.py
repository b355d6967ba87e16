"""The pipeline spec: load a file into validated, normalised model objects.

Public API (imported lazily so ``import pipex.spec.model`` stays cheap)::

    load_pipeline(path=None, *, env_files=(), config=None) -> Pipeline
    find_pipeline_file(path=None) -> Path
    parse_condition(text) -> Condition      # Condition.evaluate(env) -> bool
    parse_env_file(path) -> dict[str, str]
"""

from __future__ import annotations

from pipex._lazy import lazy_exports

__all__ = [
    "Condition",
    "Pipeline",
    "Step",
    "find_pipeline_file",
    "load_pipeline",
    "parse_condition",
    "parse_env_file",
]

_EXPORTS = {
    "load_pipeline": "pipex.spec.load",
    "find_pipeline_file": "pipex.spec.load",
    "parse_condition": "pipex.spec.condition",
    "Condition": "pipex.spec.condition",
    "parse_env_file": "pipex.spec.envfile",
    "Pipeline": "pipex.spec.model",
    "Step": "pipex.spec.model",
}


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
