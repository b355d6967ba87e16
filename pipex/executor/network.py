"""Find the CA bundle and proxy variables that network-enabled step phases are given."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipex.executor.base import NetworkConfig

__all__ = ["detect_network_config", "CA_BUNDLE_VARS", "PROXY_VARS", "CONTAINER_CA_PATH", "network_env"]

#: Variables read, in this order, to find the host's CA bundle when none is configured.
CA_BUNDLE_VARS = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE")
#: Variables pointed at the mounted bundle inside the container (Python ssl, pip, requests, node).
CONTAINER_CA_VARS = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
#: Proxy variables passed through from the host, both spellings since tools disagree.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy")
#: Where the CA bundle is mounted (read-only) in network-enabled containers.
CONTAINER_CA_PATH = "/run/pipex/ca-bundle.crt"


def detect_network_config(
    ca_bundle: Path | None = None, environ: Mapping[str, str] = os.environ
) -> NetworkConfig:
    """Return the network config: configured ``ca_bundle`` > SSL_CERT_FILE > PIP_CERT > REQUESTS_CA_BUNDLE.

    A bundle named by a variable is used only if it is an existing file (a stale
    variable must not break every network-enabled step); a configured one is
    used as given so a typo in ``.pipex.yml`` surfaces when a step mounts it.
    """
    bundle = ca_bundle
    if bundle is None:
        for name in CA_BUNDLE_VARS:
            value = environ.get(name)
            if value and Path(value).is_file():
                bundle = Path(value)
                break
    proxy_env = {name: environ[name] for name in PROXY_VARS if environ.get(name)}
    return NetworkConfig(ca_bundle=bundle, proxy_env=proxy_env)


def network_env(config: NetworkConfig) -> dict[str, str]:
    """Return the env a network-enabled phase gets: proxy variables and CA variables (if a bundle)."""
    env = dict(config.proxy_env)
    if config.ca_bundle is not None:
        env.update({name: CONTAINER_CA_PATH for name in CONTAINER_CA_VARS})
    return env
