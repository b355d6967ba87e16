"""Self-made TLS certificates for the Dask TLS tests (openssl): a CA, a certificate for 127.0.0.1, a client's.

``make_pki(dir, name)`` makes one CA and two leaf certificates signed by it
(``node``: the scheduler and workers, with ``IP:127.0.0.1``; ``client``).
Two calls with different names make two CAs that do not trust each other.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["make_pki"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, name: str) -> dict[str, Path]:
    """Make ``<name>-ca``, ``<name>-node`` and ``<name>-client`` (cert + key PEM files); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
             "-days", "2", "-subj", f"/CN={name} test CA", cwd=directory)  # fmt: skip
    paths = {"ca": ca}
    for leaf in ("node", "client"):
        key, csr, cert = (directory / f"{name}-{leaf}.{ext}" for ext in ("key", "csr", "pem"))
        ext = directory / f"{name}-{leaf}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={name} {leaf}", cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                 "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=directory)  # fmt: skip
        paths[f"{leaf}_cert"], paths[f"{leaf}_key"] = cert, key
    return paths
