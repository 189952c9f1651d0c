"""Broker logins without a broker: Mosquitto hashes, the password and ACL files, URLs.
(tests/integration/test_broker_auth.py runs the same files in a real mosquitto.)"""

from __future__ import annotations

import base64

import pytest

from app.errors import InvalidInputError
from app.telemetry.broker import credentialed_url, public_url
from app.telemetry.mosquitto_passwd import (
    PasswordFileError,
    check_password,
    check_username,
    hash_password,
    password_file,
)
from app.telemetry.mqtt_ingest import parse_url
from app.twins.broker_auth import (
    check_gateway_name,
    device_username,
    render_acl,
    render_passwords,
)


def test_hashes_are_pbkdf2_sha512_in_mosquittos_format() -> None:
    encoded = hash_password("tgd_secret", salt=b"0123456789ab")
    _, kind, iterations, salt, digest = encoded.split("$")
    assert (kind, iterations) == ("7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert len(base64.b64decode(digest)) == 64
    assert check_password("tgd_secret", encoded)
    assert not check_password("tgd_secreT", encoded)
    # A fresh salt each time: equal passwords do not give equal lines.
    assert hash_password("x") != hash_password("x")
    with pytest.raises(PasswordFileError):
        check_password("x", "$6$salt$hash")


@pytest.mark.parametrize("name", ["", "a:b", " a", "a\nb", "a\rb"])
def test_names_a_password_file_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(PasswordFileError):
        check_username(name)
    with pytest.raises(PasswordFileError):
        password_file({name: "$7$101$x$y"})


def test_password_file_lists_the_platform_gateways_and_devices() -> None:
    text = render_passwords(
        service=("_twingraph", "$7$S"),
        gateways={"site-a": "$7$G"},
        devices={"vav-1": "$7$D", "ahu:1": "$7$C"},
    )
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["_gw.site-a:$7$G", "_twingraph:$7$S", "ahu%3A1:$7$C", "vav-1:$7$D"]
    # A device named like the platform's user (an external broker's user may be any
    # name) does not get its login: the platform's wins.
    text = render_passwords(service=("vav-1", "$7$S"), gateways={}, devices={"vav-1": "$7$D"})
    assert "vav-1:$7$S" in text.splitlines() and "vav-1:$7$D" not in text


def test_acl_gives_each_device_its_own_topics_by_pattern() -> None:
    acl = render_acl(service_user="_twingraph", gateways={"site-a": "h"}, devices={"vav-1": "h"})
    lines = acl.splitlines()
    for line in (
        "user _twingraph",
        "topic readwrite #",
        "user _gw.site-a",
        "topic write twingraph/+/points/+",
        "topic write twingraph/+/telemetry",
        "topic read twingraph/+/errors",
        "pattern read twingraph/devices/%u/desired",
        "pattern read twingraph/devices/%u/commands",
        "pattern read twingraph/devices/%u/errors",
        "pattern write twingraph/devices/%u/reported",
        "pattern write twingraph/devices/%u/ack",
        "pattern write twingraph/devices/%u/result",
        "pattern write twingraph/devices/%u/heartbeat",
    ):
        assert line in lines
    # The gateway block ends before the patterns: its user may not read device topics.
    assert not any(line.startswith("topic") and "devices" in line for line in lines)
    # Devices add nothing per device...
    many = render_acl(
        service_user="_twingraph", gateways={}, devices={f"d{i}": "h" for i in range(100)}
    )
    assert len(many.splitlines()) == len(
        render_acl(service_user="_twingraph", gateways={}, devices={}).splitlines()
    )
    # ...except one whose id is not its user name.
    odd = render_acl(service_user=None, gateways={}, devices={"ahu:1": "h"}).splitlines()
    assert "user ahu%3A1" in odd
    assert "topic read twingraph/devices/ahu:1/desired" in odd
    assert "topic write twingraph/devices/ahu:1/reported" in odd
    assert not any(line.startswith("user _twingraph") for line in odd)


def test_names() -> None:
    assert device_username("vav-1.01") == "vav-1.01"
    assert device_username("urn:x") == "urn%3Ax"
    assert check_gateway_name("site-a.1") == "site-a.1"
    for bad in ("", "_x", "a b", "a/b", "x" * 65):
        with pytest.raises(InvalidInputError):
            check_gateway_name(bad)


def test_urls_carry_credentials_only_where_meant_to() -> None:
    url = credentialed_url("mqtt://127.0.0.1:1883", "_twingraph", "p@ss:w/rd")
    address = parse_url(url)
    assert (address.username, address.password) == ("_twingraph", "p@ss:w/rd")
    assert public_url(url) == "mqtt://127.0.0.1:1883"
    assert "p@ss" not in public_url(url)
    assert public_url("mqtts://u:p@[::1]:8883") == "mqtts://[::1]:8883"
    assert public_url("mqtt://host") == "mqtt://host"
