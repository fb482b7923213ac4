"""``make bench``: the first sync against its floor, then the backend benchmark on the large
fleet, then the console's benchmark, then reads under load with and without the model giving
way to them, then a telemetry round read from a real Prometheus (when one is installed)."""

import sys

from bench import backend_bench, prometheus_bench, reads_first_bench, sync_bench
from tests.prom_fixture import find_prometheus

sync_bench.main([])
status = backend_bench.main(sys.argv[1:])
print("\nReads under load, the model giving way to them or not (bench/reads_first_bench.py):")
status = status or reads_first_bench.main([])
if find_prometheus() is None:
    print("\nPrometheus round: skipped, no prometheus in PATH (Debian's package provides it)")
else:
    print("\nPrometheus round on the large fleet (bench/prometheus_bench.py):")
    status = status or prometheus_bench.main([])
sys.exit(status)
