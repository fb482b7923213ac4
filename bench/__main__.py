"""``make bench``: the backend benchmark on the large fleet, then the console's benchmark."""

import sys

from bench import backend_bench

sys.exit(backend_bench.main(sys.argv[1:]))
