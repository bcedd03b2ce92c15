"""The notifier without a broker: records are stand-ins with the few
methods of confluent_kafka.Message that the notifier calls.

    python -m unittest discover examples/python-notifier
"""

from __future__ import annotations

import json
import tempfile
import unittest
import uuid
from pathlib import Path
from typing import Any, Optional

import notifier

CONTRACTS = Path(__file__).resolve().parent.parent.parent / "contracts"


class Record:
    """A Kafka record as binary-mode CloudEvents write it."""

    def __init__(self, event_type: str, data: Any, offset: int = 0, event_id: Optional[str] = None) -> None:
        self._offset = offset
        self._headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", (event_id or str(uuid.uuid4())).encode()),
            ("ce_source", b"/boxoffice/reservation"),
            ("ce_type", event_type.encode()),
            ("ce_time", b"2026-11-21T10:00:00Z"),
            ("ce_subject", data["booking"]["reservationId"].encode()),
            ("content-type", b"application/json"),
            ("ce_correlationid", data["booking"]["reservationId"].encode()),
            ("ce_schemaversion", b"1"),
            ("ce_subjectversion", b"2"),
        ]
        self._value = json.dumps(data).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "boxoffice.reservation"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def booking(quantity: int = 1) -> dict[str, Any]:
    return {
        "reservationId": str(uuid.uuid4()),
        "userId": str(uuid.uuid4()),
        "listingId": str(uuid.uuid4()),
        "listingTitle": "LALALand",
        "listingKind": "movie",
        "quantity": quantity,
        "amount": quantity * 12000,
        "paymentMethod": "card",
    }


def confirmed(quantity: int = 1) -> dict[str, Any]:
    return {"booking": booking(quantity), "confirmedAt": "2026-11-21T10:00:00Z"}


class NotifierTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.output = Path(self.dir.name) / "messages.jsonl"
        self.store = notifier.Store(Path(self.dir.name) / "n.sqlite3", self.output)
        self.contracts = notifier.Contracts(CONTRACTS / "events")

    def tearDown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def sent(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        return [json.loads(line) for line in self.output.read_text().splitlines()]

    def count(self, table: str) -> int:
        return self.store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def test_a_confirmed_booking_is_sent_in_the_platforms_words(self) -> None:
        data = confirmed(45)
        self.assertTrue(notifier.handle(Record("boxoffice.reservation.confirmed", data), self.contracts, self.store))
        [message] = self.sent()
        self.assertEqual(message["kind"], "reserved")
        self.assertEqual(message["reservationId"], data["booking"]["reservationId"])
        self.assertEqual(
            message["text"],
            "Your reservation of 45 tickets for LALALand is confirmed (amount 540000).",
        )

    def test_a_placed_booking_is_recorded_but_not_news(self) -> None:
        data = {"booking": booking(), "placedAt": "2026-11-21T10:00:00Z"}
        self.assertFalse(notifier.handle(Record("boxoffice.reservation.placed", data), self.contracts, self.store))
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.count("inbox"), 1)

    def test_a_redelivered_event_is_sent_once(self) -> None:
        record = Record("boxoffice.reservation.confirmed", confirmed())
        notifier.handle(record, self.contracts, self.store)
        self.assertFalse(notifier.handle(record, self.contracts, self.store))
        self.assertEqual(len(self.sent()), 1)
        self.assertEqual(self.count("inbox"), 1)

    def test_an_event_breaking_its_schema_is_parked_and_not_sent(self) -> None:
        data = confirmed()
        del data["booking"]["userId"]
        record = Record("boxoffice.reservation.confirmed", data, offset=7)
        self.assertFalse(notifier.handle(record, self.contracts, self.store))
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.count("inbox"), 0)
        [(offset, reason)] = self.store.db.execute('SELECT "offset", reason FROM rejected').fetchall()
        self.assertEqual(offset, 7)
        self.assertIn("userId", reason)
        # Delivered again, it is parked once.
        notifier.handle(record, self.contracts, self.store)
        self.assertEqual(self.count("rejected"), 1)

    def test_a_header_of_the_wrong_kind_is_parked(self) -> None:
        record = Record("boxoffice.reservation.confirmed", confirmed())
        record._headers = [(n, b"one" if n == "ce_schemaversion" else v) for n, v in record._headers]
        self.assertFalse(notifier.handle(record, self.contracts, self.store))
        self.assertEqual(self.count("rejected"), 1)

    def test_after_a_crash_the_file_says_what_was_sent(self) -> None:
        record = Record("boxoffice.reservation.confirmed", confirmed())
        notifier.handle(record, self.contracts, self.store)
        # Killed after the append, before the database heard of it, and a
        # second append torn halfway.
        self.store.db.execute("UPDATE messages SET sent = 0")
        with open(self.output, "a") as output:
            output.write('{"eventId": "tor')
        self.store.reconcile()
        self.assertEqual(self.store.send_pending(), 0)
        self.assertEqual(len(self.sent()), 1)

    def test_wording_follows_the_product_line(self) -> None:
        bike = dict(booking(), listingKind="bike", listingTitle="Red bike")
        seated = dict(booking(2), seats=["A-1", "A-2"])
        self.assertEqual(notifier.tickets_phrase(bike), "a rental")
        self.assertEqual(notifier.tickets_phrase(seated), "seats A-1, A-2")
        self.assertEqual(notifier.tickets_phrase(dict(booking(), seats=["B-3"])), "seat B-3")
        returned = notifier.notice_for("boxoffice.reservation.returned", {"booking": bike})
        assert returned is not None
        self.assertEqual(returned.text, "Red bike is back, thank you: your rental has ended.")


if __name__ == "__main__":
    unittest.main()
