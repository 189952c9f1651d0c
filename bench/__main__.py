"""`make bench`: every benchmark, ratios against the raw engines measured in the same run."""

from __future__ import annotations

import sys


def main() -> int:
    from bench import (
        bench_events,
        bench_graphql,
        bench_http_ingest,
        bench_mqtt,
        bench_spine,
        bench_telemetry,
        bench_twins,
        bench_validation,
    )

    bench_validation.run()
    bench_spine.run()
    bench_telemetry.run()
    bench_http_ingest.run()
    bench_mqtt.run()
    bench_graphql.run()
    bench_twins.run()
    bench_events.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
