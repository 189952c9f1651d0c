"""A SPARQL client in its own process, as an analyst's would be, for latency benchmarks.

``python -m bench.latency_client TOKEN`` reads one JSON request per stdin line,
``{"url": ..., "query": ..., "repeat": n}``, POSTs the query ``repeat`` times after one
warm-up (``application/sparql-query``, JSON results) and answers one JSON line:
``{"seconds": [...], "bytes": n}``, each sample the client-observed time of one request
(send to last byte read). Use it through :class:`LatencyClient`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx


class LatencyClient:
    """The client process, started on entry and ended on exit."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LatencyClient:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.latency_client", self._token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def post(self, url: str, query: str, repeat: int) -> tuple[list[float], int]:
        """Seconds per request for ``repeat`` requests, and the answer's size in bytes."""
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(json.dumps({"url": url, "query": query, "repeat": repeat}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the latency client ended (exit code {self._proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the latency client failed: {answer['error']}")
        return answer["seconds"], answer["bytes"]


def _serve_requests(token: str) -> None:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/sparql-results+json",
        "Content-Type": "application/sparql-query",
    }
    with httpx.Client(headers=headers, timeout=600) as http:
        for line in sys.stdin:
            job = json.loads(line)
            try:
                http.post(job["url"], content=job["query"]).raise_for_status()  # warm-up
                seconds, size = [], 0
                for _ in range(job["repeat"]):
                    t0 = time.perf_counter()
                    response = http.post(job["url"], content=job["query"])
                    seconds.append(time.perf_counter() - t0)
                    response.raise_for_status()
                    size = len(response.content)
                reply: dict[str, Any] = {"seconds": seconds, "bytes": size}
            except httpx.HTTPError as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve_requests(sys.argv[1])
