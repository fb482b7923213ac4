"""The audit chain's head kept outside the database, in a ConfigMap of the backend's namespace.

The chain proves that no record was edited, removed or inserted, except at its end: a database
whose newest rows were deleted still holds a valid, shorter chain. The head written here after
every change (sequence and hash) is what ``audit verify`` compares that end with. Writes never move
the head backwards, so two backends finishing changes in either order leave the newest one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from backend.changes.kube import ClusterClient, Conflict, KubeError, ObjectRef
from backend.schemas import ChainHead

CONFIGMAP_NAME = "opsconsole-audit-head"


class ConfigMapHead:
    def __init__(self, cluster: ClusterClient, namespace: str, name: str = CONFIGMAP_NAME) -> None:
        self.cluster = cluster
        self.ref = ObjectRef("", "v1", "configmaps", "ConfigMap", namespace, name)

    def read(self) -> ChainHead | None:
        try:
            obj = self.cluster.get(self.ref)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return self._head(obj)

    def write(self, head: ChainHead, attempts: int = 5) -> None:
        for _ in range(attempts):
            try:
                self._write_once(head)
                return
            except Conflict:
                continue  # another backend moved it: read again
        raise RuntimeError(f"the audit head ConfigMap kept changing ({attempts} attempts)")

    def _write_once(self, head: ChainHead) -> None:
        data = {
            "sequence": str(head.seq),
            "hash": head.hash,
            "updated": datetime.now(UTC).isoformat(),
        }
        try:
            current = self.cluster.get(self.ref)
        except KubeError as exc:
            if exc.status != 404:
                raise
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.ref.name, "namespace": self.ref.namespace},
                "data": data,
            }
            self.cluster.create(self.ref, body)
            return
        known = self._head(current)
        if known is not None and known.seq >= head.seq:
            return
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "data": data,
        }
        self.cluster.patch(self.ref, patch, "merge")

    @staticmethod
    def _head(obj: dict) -> ChainHead | None:
        data = obj.get("data") or {}
        try:
            return ChainHead(seq=int(data["sequence"]), hash=str(data["hash"]))
        except (KeyError, ValueError):
            return None
