"""BACnet/IP -> Brick: ``twingraph ingest bacnet``.

``client`` (bacpypes3: Who-Is/I-Am, object lists, property reads) produces a ``scan`` (plain
records, saved to and replayed from JSON); ``classify`` guesses each point's Brick class with
a confidence, ``review`` lets a person correct it, ``mapping`` turns the scan into Brick
triples with BACnet and time-series references, ``job`` validates and commits them, and
``poll`` feeds present values (polling or COV) into telemetry. ``cli`` is the command.
"""
