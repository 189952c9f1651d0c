"""The MQTT 5 packet encoder/decoder of the lean client, without a broker."""

from __future__ import annotations

import struct

import pytest

from app.telemetry.mqtt_client import (
    MAX_REMAINING_LENGTH,
    REASON_STRING,
    RECEIVE_MAXIMUM,
    SERVER_KEEP_ALIVE,
    Decoder,
    ProtocolError,
    decode_properties,
    decode_varint,
    encode_connect,
    encode_pubacks,
    encode_publish,
    encode_subscribe,
    encode_varint,
)

VARINTS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (MAX_REMAINING_LENGTH, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "encoded"), VARINTS)
def test_varint_round_trips_at_the_byte_boundaries(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded, 0) == (value, len(encoded))
    assert decode_varint(b"xy" + encoded + b"z", 2) == (value, 2 + len(encoded))


@pytest.mark.parametrize(("value", "encoded"), VARINTS[2:])
def test_a_truncated_varint_is_incomplete_not_wrong(value: int, encoded: bytes) -> None:
    for cut in range(len(encoded)):
        assert decode_varint(encoded[:cut], 0) is None


@pytest.mark.parametrize("value", [-1, MAX_REMAINING_LENGTH + 1])
def test_varint_range(value: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(value)


def test_a_five_byte_varint_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_varint(b"\xff\xff\xff\xff\x01", 0)


def _publish_with_properties(topic: str, payload: bytes, pid: int, props: bytes) -> bytes:
    body = struct.pack(">H", len(topic)) + topic.encode() + struct.pack(">H", pid)
    body += encode_varint(len(props)) + props + payload
    return bytes((0x32,)) + encode_varint(len(body)) + body


def test_many_publishes_in_one_read() -> None:
    data = b"".join(
        encode_publish(f"t/{i}", str(i).encode(), qos=1, packet_id=i + 1) for i in range(100)
    )
    messages, others = Decoder().feed(data)
    assert others == []
    assert messages == [(f"t/{i}", str(i).encode(), 1, i + 1) for i in range(100)]


def test_every_split_of_the_stream_decodes_the_same() -> None:
    """Reads can end anywhere: in the fixed header, the remaining length, the body."""
    big = b"x" * 300  # remaining length takes 2 bytes
    stream = (
        encode_publish("a/b", b"21.5", qos=1, packet_id=7)
        + encode_publish("a/c", big, qos=0)
        + b"\xd0\x00"  # PINGRESP
        + _publish_with_properties("a/d", b"v", 9, b"\x02\x00\x00\x00\x3c" + b"\x26" + 4 * b"\x00")
        + encode_publish("ü/é", b"", qos=1, packet_id=65535)
    )
    expected = [
        ("a/b", b"21.5", 1, 7),
        ("a/c", big, 0, 0),
        ("a/d", b"v", 1, 9),
        ("ü/é", b"", 1, 65535),
    ]
    whole, others = Decoder().feed(stream)
    assert whole == expected
    assert others == [(0xD0, b"")]
    for cut in range(1, len(stream)):
        decoder = Decoder()
        first, o1 = decoder.feed(stream[:cut])
        second, o2 = decoder.feed(stream[cut:])
        assert first + second == expected, cut
        assert o1 + o2 == others
        assert decoder.buffered == 0
    decoder = Decoder()
    got: list[object] = []
    for i in range(len(stream)):  # one byte per read
        got += decoder.feed(stream[i : i + 1])[0]
    assert got == expected


def test_a_large_packet_in_many_reads_is_joined_once_complete() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: a 3-byte remaining length
    packet = encode_publish("big", payload, qos=1, packet_id=3)
    pieces = [packet[i : i + 1000] for i in range(0, len(packet), 1000)]
    decoder = Decoder()
    for piece in pieces[:-1]:
        assert decoder.feed(piece) == ([], [])
    messages, _ = decoder.feed(pieces[-1] + encode_publish("next", b"1", qos=0))
    assert messages == [("big", payload, 1, 3), ("next", b"1", 0, 0)]
    assert decoder.buffered == 0


def test_publish_properties_longer_than_127_bytes_are_skipped() -> None:
    props = b"\x03" + struct.pack(">H", 200) + b"c" * 200  # content type
    messages, _ = Decoder().feed(_publish_with_properties("t", b"42", 5, props))
    assert messages == [("t", b"42", 1, 5)]


def test_qos2_publish_is_refused() -> None:
    body = b"\x00\x01t\x00\x01\x00p"
    with pytest.raises(ProtocolError):
        Decoder().feed(bytes((0x34, len(body))) + body)


def test_connect_layout() -> None:
    packet = encode_connect(
        "cid",
        keepalive_s=30,
        clean_start=False,
        session_expiry_s=3600,
        receive_maximum=65535,
        username="u",
        password="p",
    )
    assert packet[0] == 0x10
    length, start = decode_varint(packet, 1) or (0, 0)
    assert len(packet) == start + length
    body = packet[start:]
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0xC0  # user name + password, clean start off
    assert body[8:10] == b"\x00\x1e"
    props, end = decode_properties(body, 10)
    assert props == {0x11: 3600, RECEIVE_MAXIMUM: 65535}
    assert body[end:] == b"\x00\x03cid\x00\x01u\x00\x01p"
    clean = encode_connect(
        "c", keepalive_s=0, clean_start=True, session_expiry_s=0, receive_maximum=10
    )
    assert clean[start + 7] == 0x02


def test_subscribe_and_puback_layout() -> None:
    assert encode_subscribe(258, [("a/+", 1), ("b", 0)]) == (
        b"\x82\x0d\x01\x02\x00" + b"\x00\x03a/+\x01" + b"\x00\x01b\x00"
    )
    assert encode_pubacks([1, 258, 65535]) == (
        b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff"
    )
    assert encode_pubacks([]) == b""
    acks, _ = Decoder().feed(encode_pubacks([5, 6]))
    assert acks == []
    assert Decoder().feed(encode_pubacks([5, 6]))[1] == [(0x40, b"\x00\x05"), (0x40, b"\x00\x06")]


def test_properties_of_a_connack() -> None:
    block = (
        b"\x21\x00\x14"  # receive maximum 20
        + b"\x13\x00\x3c"  # server keep alive 60
        + b"\x1f\x00\x02hi"  # reason string
        + b"\x26\x00\x01k\x00\x01v\x26\x00\x01k\x00\x01w"  # user properties, repeated
        + b"\x0b\x80\x01"  # subscription identifier 128 (a varint)
        + b"\x24\x01"  # maximum QoS
    )
    props, end = decode_properties(encode_varint(len(block)) + block, 0)
    assert end == len(block) + 1
    assert props[RECEIVE_MAXIMUM] == 20
    assert props[SERVER_KEEP_ALIVE] == 60
    assert props[REASON_STRING] == "hi"
    assert props[0x26] == [("k", "v"), ("k", "w")]
    assert props[0x0B] == 128
    assert props[0x24] == 1


@pytest.mark.parametrize(
    "block",
    [
        b"\x03\x21\x00",  # truncated value
        b"\x02\x7e\x00",  # unknown property
        b"\x05\x21\x00",  # block longer than the packet
    ],
)
def test_malformed_properties(block: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_properties(block, 0)
