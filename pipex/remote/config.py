"""Which remote cache a command uses: ``.pipex.yml remote:``, then ``PIPEX_REMOTE``, then ``--remote``.

The URL is ``s3://bucket/prefix``; the endpoint, region and profile fall back
to botocore's own environment (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``,
``AWS_PROFILE``). Credentials are never read here: botocore's default chain
finds them, so no secret reaches a pipex file, fingerprint, event or log.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipex.errors import UsageError

__all__ = ["RemoteConfig", "remote_config", "parse_url", "PULL_MODES", "PUSH_MODES"]

PULL_MODES = ("lazy", "eager", "off")
PUSH_MODES = ("auto", "on", "off")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class RemoteConfig:
    """A configured remote: where it is, how to talk to it, what to pull and push."""

    url: str
    bucket: str
    prefix: str  # "" or "team1/" (always ending in "/")
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    pull: str = "lazy"
    push: str = "auto"
    required: bool = False
    jobs: int = 16
    push_exclude: tuple[str, ...] = ()

    def pushes(self, step_id: str) -> bool:
        """True unless pushing is off or ``step_id`` matches ``pushExclude``."""
        if self.push == "off":
            return False
        return not any(fnmatch.fnmatchcase(step_id, pattern) for pattern in self.push_exclude)

    def where(self) -> dict[str, str | None]:
        """Where the remote is (url, endpoint, region), as a cluster job names it; credentials stay with each machine."""
        return {"url": self.url, "endpoint": self.endpoint, "region": self.region}

    def describe(self) -> str:
        """The URL and, when set, the endpoint (for messages)."""
        return f"{self.url} at {self.endpoint}" if self.endpoint else self.url


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, "prefix/"); UsageError naming the URL otherwise."""
    if not url.startswith("s3://"):
        msg = f"invalid remote {url!r}: use s3://bucket/prefix (or 'off')"
        raise UsageError(msg)
    bucket, _, prefix = url[5:].partition("/")
    if not _BUCKET_RE.match(bucket):
        msg = f"invalid remote {url!r}: {bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"
        raise UsageError(msg)
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        msg = f"invalid remote {url!r}: the prefix has an empty, '.' or '..' part"
        raise UsageError(msg)
    return bucket, f"{prefix}/" if prefix else ""


def remote_config(
    setting: Mapping[str, Any] | None,
    *,
    override: str | None = None,
    pull: str | None = None,
    push: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> RemoteConfig | None:
    """The remote a command uses, or None for none.

    ``setting`` is ``.pipex.yml``'s (validated) ``remote:``; ``PIPEX_REMOTE``
    replaces its URL and ``override`` (``--remote``) replaces both; either may
    be ``off``. ``pull`` and ``push`` are the command's ``--pull``/``--push``.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = dict(setting or {})
    for url in (env.get("PIPEX_REMOTE") or None, override):
        if url is None:
            continue
        if url.strip().lower() in ("off", "none", ""):
            return None
        raw["url"] = url.strip()
    if "url" not in raw:
        return None
    bucket, prefix = parse_url(str(raw["url"]))
    config = RemoteConfig(
        url=str(raw["url"]),
        bucket=bucket,
        prefix=prefix,
        endpoint=raw.get("endpoint") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        region=raw.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        profile=raw.get("profile") or None,
        pull=str(raw.get("pull", "lazy")),
        push=str(raw.get("push", "auto")),
        required=bool(raw.get("required", False)),
        jobs=int(raw.get("jobs", 16)),
        push_exclude=tuple(raw.get("pushExclude") or ()),
    )
    if pull is not None:
        if pull not in PULL_MODES:
            msg = f"invalid --pull {pull!r}: use lazy, eager or off"
            raise UsageError(msg)
        config = replace(config, pull=pull)
    if push is not None:
        config = replace(config, push="on" if push else "off")
    return config
