"""``make bench``: the first sync against its floor, then the backend benchmark on the large
fleet, then the console's benchmark."""

import sys

from bench import backend_bench, sync_bench

sync_bench.main([])
sys.exit(backend_bench.main(sys.argv[1:]))
