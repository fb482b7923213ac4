"""Find the cluster the way kubectl does, and build the official client for it.

Order: an explicit ``--kubeconfig`` file; else ``$KUBECONFIG`` (a list of files, merged; the first
file that names a cluster, user or context wins for that name, and the first current-context wins);
else ``~/.kube/config``; else the in-cluster service account (a pod's token and CA). The context is
``--context`` or the merged current-context. Failures raise ``ClusterAccessError`` whose message
says what was tried and what to do, so that ``opsconsole serve`` prints one line, not a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

DEFAULT_KUBECONFIG = Path("~/.kube/config")
# The watch threads each hold a connection; the default pool (5 per CPU) would thrash.
CONNECTION_POOL_SIZE = 48


class ClusterAccessError(Exception):
    """No usable cluster configuration; the message is meant for the operator."""


@dataclass
class ClusterAccess:
    """A ready client and a description of what it talks to."""

    api_client: client.ApiClient
    server: str
    context: str | None
    source: str  # "kubeconfig <paths>" or "in-cluster"


def kubeconfig_paths(
    explicit: Path | None = None, environ: Mapping[str, str] | None = None
) -> list[Path]:
    """The kubeconfig files to merge, existing ones only, in kubectl's order of precedence."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        path = explicit.expanduser()
        if not path.is_file():
            raise ClusterAccessError(f"kubeconfig file {str(path)!r} does not exist")
        return [path]
    if env.get("KUBECONFIG"):
        candidates = [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
    else:
        candidates = [DEFAULT_KUBECONFIG.expanduser()]
    return [p for p in candidates if p.is_file()]


def _first_current_context(paths: list[Path]) -> str | None:
    """kubectl takes current-context from the first file that sets it."""
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterAccessError(f"cannot read kubeconfig {str(path)!r}: {exc}") from None
        if isinstance(data, dict) and data.get("current-context"):
            return str(data["current-context"])
    return None


def _new_configuration() -> client.Configuration:
    cfg = client.Configuration()
    cfg.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return cfg


def _from_kubeconfig(paths: list[Path], context: str | None) -> ClusterAccess:
    context = context or _first_current_context(paths)
    if context is None:
        names = ", ".join(str(p) for p in paths)
        raise ClusterAccessError(f"no current-context in {names}; pass --context")
    cfg = _new_configuration()
    try:
        api_client = config.new_client_from_config(
            config_file=os.pathsep.join(str(p) for p in paths),
            context=context,
            persist_config=False,
            client_configuration=cfg,
        )
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
        raise ClusterAccessError(f"kubeconfig context {context!r}: {exc}") from None
    source = "kubeconfig " + ", ".join(str(p) for p in paths)
    return ClusterAccess(api_client, cfg.host, context, source)


def _in_cluster() -> ClusterAccess:
    cfg = _new_configuration()
    config.load_incluster_config(client_configuration=cfg)
    return ClusterAccess(client.ApiClient(cfg), cfg.host, None, "in-cluster")


def load_cluster_access(
    kubeconfig: Path | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClusterAccess:
    """Resolve cluster access as kubectl would; raise ``ClusterAccessError`` when there is none."""
    paths = kubeconfig_paths(kubeconfig, environ)
    if paths:
        return _from_kubeconfig(paths, context)
    if context is not None:
        raise ClusterAccessError(f"--context {context!r} given but no kubeconfig file was found")
    try:
        return _in_cluster()
    except ConfigException:
        pass
    env = os.environ if environ is None else environ
    looked = env.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG)
    raise ClusterAccessError(
        f"no Kubernetes cluster configured: no kubeconfig at {looked} and not running in a "
        "cluster (no service account); pass --kubeconfig FILE or set KUBECONFIG "
        "(`opsconsole sandbox --kubeconfig-out FILE` writes one for a local sandbox)"
    )
