"""Property schemas never fetch anything; values are plain JSON; TDs hide broker secrets."""

from __future__ import annotations

import http.server
import threading

import pytest

from app.errors import InvalidInputError
from app.twins.schemas import check_schema, check_value
from app.twins.td import _public_url


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "file:///etc/passwd"},
        {"$ref": "#/$defs/missing"},
        {"properties": {"a": {"$ref": "#/nowhere"}}},
    ],
)
def test_schemas_must_be_self_contained(schema: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError) as err:
        check_schema("sensor.v1.Rate", schema)
    assert err.value.code == "bad_schema"


def test_a_remote_reference_is_refused_without_being_fetched() -> None:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "number"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/schema.json"
        with pytest.raises(InvalidInputError):
            check_schema("sensor.v1.Rate", {"$ref": url})
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []


def test_internal_references_work() -> None:
    schema = {"$defs": {"rate": {"type": "number", "minimum": 1}}, "$ref": "#/$defs/rate"}
    assert check_schema("sensor.v1.Rate", schema) == schema
    check_value("sensor.v1.Rate", 5, schema)
    with pytest.raises(InvalidInputError) as err:
        check_value("sensor.v1.Rate", 0, schema)
    assert err.value.code == "schema_violation"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": [float("-inf")]}, "a\x00b"])
def test_values_postgresql_cannot_store_are_refused(value: object) -> None:
    with pytest.raises(InvalidInputError) as err:
        check_value("sensor.v1.Rate", value, None)
    assert err.value.code == "bad_value"


def test_thing_descriptions_show_the_broker_without_credentials() -> None:
    assert _public_url("mqtt://dev:s3cret@10.0.0.5:1883") == "mqtt://10.0.0.5:1883"
    assert _public_url("mqtts://u:p@[::1]") == "mqtts://[::1]"
