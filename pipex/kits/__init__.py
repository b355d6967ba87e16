"""The built-in kits (shell, python, node); the kit protocol itself lives in ``pipex.spec.kit``.

``Kit``, ``KitContext`` and ``KitError`` are re-exported here because custom
kits written for earlier versions import them from ``pipex.kits``.
"""

from __future__ import annotations

from pipex.spec.kit import ANY_PARAMS, Kit, KitContext, KitError

__all__ = ["Kit", "KitContext", "KitError", "ANY_PARAMS"]
