"""The floor for a first full sync: list every kind the backend watches, and nothing else.

A bare client run as its own process (``python -m bench.floor_client KUBECONFIG PAGE_SIZE
PATH...``), so that interpreter start counts as it does for ``opsconsole serve``: it reads the
server, CA and bearer token from the kubeconfig, pages through each list path with the backend's
page size, one thread per kind as the backend's cache does, and parses every page with orjson.
No typed models, no slimming, no fleet model, no database, no HTTP server: what remains is the
time the machine needs to move and parse the cluster's JSON. It prints the objects it listed.
"""

from __future__ import annotations

import base64
import ssl
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import orjson
import urllib3
import yaml


def _pool(kubeconfig: Path) -> tuple[urllib3.PoolManager, str, dict[str, str]]:
    """A connection pool for the kubeconfig's current context: its server, CA and token."""
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    tls = ssl.create_default_context()
    if "certificate-authority-data" in cluster["cluster"]:
        ca = base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode()
        tls = ssl.create_default_context(cadata=ca)
    pool = urllib3.PoolManager(maxsize=4, ssl_context=tls)
    return pool, cluster["cluster"]["server"], {"Authorization": f"Bearer {user['user']['token']}"}


def list_all(pool: urllib3.PoolManager, url: str, headers: dict[str, str], limit: int) -> int:
    """Every page of one list; the number of objects in it (a 404, an absent API, is none)."""
    count, token = 0, ""
    while True:
        query = f"?limit={limit}" + (f"&continue={quote(token)}" if token else "")
        response = pool.request("GET", url + query, headers=headers)
        if response.status == 404:
            return count
        page = orjson.loads(response.data)
        count += len(page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return count


def main(argv: list[str]) -> int:
    kubeconfig, limit, paths = Path(argv[0]), int(argv[1]), argv[2:]
    pool, server, headers = _pool(kubeconfig)
    counts: dict[str, int] = {}

    def one(path: str) -> None:
        counts[path] = list_all(pool, server + path, headers, limit)

    threads = [threading.Thread(target=one, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(sum(counts.values()))
    return 0 if len(counts) == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
