"""The Kafka source's per-message loop, with stand-in messages (no broker needed)."""

from __future__ import annotations

from dataclasses import dataclass

from dataflows.kafka_batches import file_messages

EOF_CODE = -191  # confluent-kafka's KafkaError._PARTITION_EOF


@dataclass
class Error:
    code_: int
    name_: str = "_PARTITION_EOF"
    text: str = "Broker: No more messages"

    def code(self) -> int:
        return self.code_

    def name(self) -> str:
        return self.name_

    def str(self) -> str:
        return self.text


@dataclass
class Message:
    partition_: int | None
    offset_: int | None = None
    value_: bytes | None = None
    error_: Error | None = None

    def partition(self) -> int | None:
        return self.partition_

    def offset(self) -> int | None:
        return self.offset_

    def value(self) -> bytes | None:
        return self.value_

    def error(self) -> Error | None:
        return self.error_


def test_messages_are_filed_under_their_partition_in_order():
    pending = {0: None, 2: None}
    file_messages([Message(2, 7, b"a"), Message(0, 3, b"b"), Message(2, 8, None), Message(0, 4, b"c")], pending,
                  "t", EOF_CODE)
    assert pending[0] is not None and pending[2] is not None
    assert (pending[0].source, pending[0].partition, pending[0].offsets, pending[0].values) == ("t", 0, [3, 4],
                                                                                                  [b"b", b"c"])
    assert (pending[2].offsets, pending[2].values) == ([7, 8], [b"a", None])  # an empty value stays (a dead letter later)
    file_messages([Message(0, 5, b"d")], pending, "t", EOF_CODE)  # a later poll adds to what is pending
    assert pending[0].offsets == [3, 4, 5]


def test_errors_end_of_partition_and_closed_partitions():
    pending = {1: None, 3: None}
    file_messages([
        Message(3, 10, error_=Error(EOF_CODE)),  # end of partition 3
        Message(1, 4, error_=Error(-195, "_TRANSPORT", "broker down")),
        Message(None, None, error_=Error(-187, "_ALL_BROKERS_DOWN", "all down")),  # client-level: lowest open
        Message(0, 9, b"x"),  # partition 0 is closed here: dropped
    ], pending, "t", EOF_CODE)
    assert pending[3] is not None and pending[3].eof and pending[3].offsets == [] and pending[3].errors == []
    assert pending[1] is not None and not pending[1].eof
    assert pending[1].errors == [(4, "_TRANSPORT: broker down"), (-1, "_ALL_BROKERS_DOWN: all down")]
    assert 0 not in pending


def test_no_open_partition_takes_nothing():
    pending: dict = {}
    file_messages([Message(0, 1, b"x")], pending, "t", EOF_CODE)
    assert pending == {}
