"""Helpers for store tests: write a directory from a spec, snapshot one byte-exactly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# A spec for a directory: name -> bytes (file), dict (directory), ("link", target), ("exec", bytes).
TreeSpec = Mapping[str | bytes, object]


def write_tree(root: Path, spec: TreeSpec) -> Path:
    """Create ``spec`` under ``root`` (created); names may be bytes for odd names."""
    os.makedirs(root, exist_ok=True)
    base = os.fsencode(root)
    for name, value in spec.items():
        path = os.path.join(base, os.fsencode(name))
        if isinstance(value, bytes):
            with open(path, "wb") as handle:
                handle.write(value)
        elif isinstance(value, tuple) and value[0] == "link":
            os.symlink(os.fsencode(value[1]), path)
        elif isinstance(value, tuple) and value[0] == "exec":
            with open(path, "wb") as handle:
                handle.write(value[1])
            os.chmod(path, 0o755)
        else:
            assert isinstance(value, Mapping)
            write_tree(Path(os.fsdecode(path)), value)
    return root


def snapshot(root: Path) -> dict[bytes, tuple]:
    """What a directory holds, byte-exactly: path -> (kind, content or target, mode bits)."""
    out: dict[bytes, tuple] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir", st.st_mode & 0o7777)
            else:
                with open(path, "rb") as handle:
                    out[rel] = ("file", handle.read(), st.st_mode & 0o7777)
    return out


