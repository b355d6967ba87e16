"""Blobs on any S3-compatible server through boto3, imported on first use (a local no-op plan never pays for it).

boto3 brings retries, connection pooling, multipart uploads and every
credential source (environment, profiles, SSO, web identity, instance roles);
pipex passes none itself. Since boto3 1.36 clients send checksums by default
that some S3-compatible servers reject: both are set to ``when_required``.
Every botocore failure becomes one :class:`RemoteError` line naming the
remote and what it said.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipex.errors import RemoteDeniedError, RemoteError
from pipex.remote.blobs import BlobInfo, Counters

if TYPE_CHECKING:
    from pipex.remote.config import RemoteConfig

__all__ = ["S3Blobs"]

_MULTIPART_AT = 64 * 1024 * 1024  # one PUT below this; boto3's parallel multipart above
_CHUNK = 1024 * 1024
_DENIED = {"AccessDenied", "AllAccessDisabled", "Forbidden", "403"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class S3Blobs:
    """The remote's keys as S3 objects under ``bucket/prefix``."""

    def __init__(self, config: RemoteConfig) -> None:
        """Nothing is imported or connected until the first request."""
        self.config = config
        self.counters = Counters()
        self._client: Any = None
        self._client_lock = threading.Lock()

    # -- the client ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client (made once, by one thread: making one costs ~0.2 s of CPU)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            msg = "the remote cache needs boto3: pip install boto3"
            raise RemoteError(msg) from None
        try:
            session = boto3.session.Session(profile_name=self.config.profile, region_name=self.config.region)
            return session.client(
                "s3",
                endpoint_url=self.config.endpoint,
                config=Config(
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    # A server that accepts and never answers must cost seconds, not minutes:
                    # botocore's defaults (60 s read, 4 attempts) made one plan wait 4 minutes.
                    retries={"total_max_attempts": 2, "mode": "standard"},
                    connect_timeout=3,
                    read_timeout=10,
                    max_pool_connections=max(10, self.config.jobs),
                    region_name=self.config.region or "us-east-1",
                ),
            )
        except Exception as error:  # botocore raises a dozen kinds for a bad profile or endpoint
            raise self._error("connect to", "", error) from None

    def _key(self, key: str) -> str:
        return self.config.prefix + key

    def _error(self, verb: str, key: str, error: BaseException) -> RemoteError:
        where = f"remote {self.config.describe()}"
        what = f"{verb} {key}" if key else verb
        code = _code(error)
        if code == "NoSuchBucket":
            return RemoteError(f"{where}: bucket {self.config.bucket!r} does not exist")
        if code in _DENIED:
            return RemoteDeniedError(f"{where}: access denied to {what} (credentials may not do this)")
        if code in _BAD_CREDENTIALS:
            return RemoteError(f"{where}: the credentials were refused ({code}); check AWS_PROFILE / AWS_ACCESS_KEY_ID")
        name = type(error).__name__
        if name == "NoCredentialsError":
            return RemoteError(f"{where}: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)")
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
            return RemoteError(f"{where}: cannot reach the server ({name})")
        if name == "ProfileNotFound":
            return RemoteError(f"{where}: AWS profile {self.config.profile!r} not found")
        detail = str(error).splitlines()[0] if str(error) else name
        return RemoteError(f"{where}: cannot {what}: {detail}")

    # -- the verbs ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None."""
        self.counters.add("gets")
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=self._key(key))
            data: bytes = response["Body"].read()
        except Exception as error:
            if _code(error) in _MISSING:
                return None
            raise self._error("read", key, error) from None
        self.counters.add("bytes_in", len(data))
        return data

    def get_to(self, key: str, fd: int) -> int | None:
        """Stream ``key`` into ``fd``; its size, or None if absent."""
        self.counters.add("gets")
        try:
            body = self.client.get_object(Bucket=self.config.bucket, Key=self._key(key))["Body"]
            size = 0
            for chunk in body.iter_chunks(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                size += len(chunk)
        except OSError:
            raise
        except Exception as error:
            if _code(error) in _MISSING:
                return None
            raise self._error("read", key, error) from None
        self.counters.add("bytes_in", size)
        return size

    def head(self, key: str) -> BlobInfo | None:
        """Size and age of ``key``, or None."""
        self.counters.add("heads")
        try:
            response = self.client.head_object(Bucket=self.config.bucket, Key=self._key(key))
        except Exception as error:
            if _code(error) in _MISSING:
                return None
            raise self._error("read", key, error) from None
        return BlobInfo(key, int(response["ContentLength"]), response["LastModified"].timestamp())

    def put(self, key: str, data: bytes) -> bool:
        """Write ``key`` with If-None-Match: * (an existing key is success, not an overwrite)."""
        self.counters.add("puts")
        try:
            self.client.put_object(Bucket=self.config.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except Exception as error:
            if _code(error) in _EXISTS:
                return False
            raise self._error("write", key, error) from None
        self.counters.add("bytes_out", len(data))
        return True

    def put_file(self, key: str, path: str, size: int) -> bool:
        """Write a file: one conditional PUT, or (large) a parallel multipart upload, invisible until complete."""
        if size < _MULTIPART_AT:
            with open(path, "rb") as handle:
                return self.put(key, handle.read())
        if self.head(key) is not None:
            return False
        # Correctness does not rest on If-None-Match here: the key is content-addressed,
        # so a racing writer uploads the same bytes.
        from boto3.s3.transfer import TransferConfig

        self.counters.add("puts")
        try:
            self.client.upload_file(
                path, self.config.bucket, self._key(key),
                Config=TransferConfig(multipart_threshold=_MULTIPART_AT, max_concurrency=self.config.jobs),
            )  # fmt: skip
        except Exception as error:
            raise self._error("write", key, error) from None
        self.counters.add("bytes_out", size)
        return True

    def touch(self, key: str) -> None:
        """Copy ``key`` onto itself so its last-modified time is now."""
        self.counters.add("puts")
        full = self._key(key)
        try:
            self.client.copy_object(
                Bucket=self.config.bucket, Key=full, CopySource={"Bucket": self.config.bucket, "Key": full},
                MetadataDirective="REPLACE", Metadata={"pipex-touched": str(int(time.time()))},
            )  # fmt: skip
        except Exception as error:
            raise self._error("touch", key, error) from None

    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:
        """Every key under ``prefix`` (relative to the remote's prefix)."""
        strip = len(self.config.prefix)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                self.counters.add("lists")
                for item in page.get("Contents", ()):
                    yield BlobInfo(item["Key"][strip:], int(item["Size"]), item["LastModified"].timestamp())
        except Exception as error:
            raise self._error("list", prefix or "/", error) from None

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys``, a thousand per request."""
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self.counters.add("deletes", len(batch))
            try:
                response = self.client.delete_objects(
                    Bucket=self.config.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True},
                )
            except Exception as error:
                raise self._error("delete", batch[0], error) from None
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise self._error("delete", first.get("Key", "?"), _Coded(first.get("Code", "?"), first.get("Message", "")))


    def abort_uploads(self, older_than: float, *, dry_run: bool = False) -> int:
        """Abort multipart uploads under the prefix begun more than ``older_than`` seconds ago."""
        now = time.time()
        aborted = 0
        try:
            response = self.client.list_multipart_uploads(Bucket=self.config.bucket, Prefix=self.config.prefix)
            for upload in response.get("Uploads") or ():
                if now - upload["Initiated"].timestamp() <= older_than:
                    continue
                aborted += 1
                if not dry_run:
                    self.client.abort_multipart_upload(Bucket=self.config.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        except Exception as error:
            raise self._error("list uploads of", self.config.prefix or "/", error) from None
        return aborted


class _Coded(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.response = {"Error": {"Code": code}}


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        if code:
            return code
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(status or "")
    return ""
