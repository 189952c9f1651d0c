"""`make bench`: every benchmark, ratios against the raw engines measured in the same run."""

from __future__ import annotations

import sys


def main() -> int:
    from bench import bench_spine, bench_validation

    bench_validation.run()
    bench_spine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
