"""The backend's fleet model: tenants, workloads, nodes and GPUs computed from the cluster cache and
GPU telemetry, with the query helpers the REST API answers from."""

from backend.fleet.inputs import ClusterObjects, GpuSampleLike, NoTelemetry, TelemetryLike
from backend.fleet.model import FleetModel, build_fleet_model
from backend.fleet.nodes import GpuRules
from backend.fleet.query import QueryError, Table

__all__ = [
    "ClusterObjects",
    "FleetModel",
    "GpuRules",
    "GpuSampleLike",
    "NoTelemetry",
    "QueryError",
    "Table",
    "TelemetryLike",
    "build_fleet_model",
]
