#!/usr/bin/env python3
"""A boxoffice notifier in Python: another language reading the same events.

It consumes the reservation and payment topics in its own consumer group,
reads each record as a CloudEvent in Kafka binary mode (the attributes in
``ce_*`` headers, the event's data as the JSON value), checks it against the
published JSON Schema of its type, and "sends" the customer the message the
platform's own notifier would (a KakaoTalk stand-in: one JSON line per
message appended to an output file).

Exactly-once in effect, on at-least-once delivery:

1. The event id goes into an SQLite inbox, in the same SQLite transaction
   as the message to send. A redelivered event finds its id there and is
   skipped, so a message is decided once.
2. The message is then appended to the output file and marked sent. The
   file carries each message's event id, so after a crash the file itself
   says what was already sent (see ``Store.reconcile``).
3. Only then is the Kafka offset committed. A crash anywhere before that
   means the record is delivered again, which steps 1 and 2 absorb.

Records that are not valid events are logged and parked in a ``rejected``
table; the loop goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

log = logging.getLogger("python-notifier")

# The topics boxoffice publishes to (before any namespace prefix); the
# AsyncAPI document lists them as channel addresses.
TOPICS = ("boxoffice.reservation", "boxoffice.payment")

# Attributes whose header text stands for a number in the envelope.
INTEGER_ATTRIBUTES = ("schemaversion", "subjectversion")


# ---------------------------------------------------------------- config


@dataclass(frozen=True)
class Config:
    bootstrap_servers: str
    namespace: Optional[str]
    group: str
    db_path: Path
    output_path: Path
    contracts_dir: Path
    hold_commit_ms: int

    def qualified(self, name: str) -> str:
        """The broker's name for a topic or group: boxoffice prefixes both
        with its namespace when one is configured."""
        return f"{self.namespace}.{name}" if self.namespace else name


def parse_config(argv: list[str]) -> Config:
    env = os.environ.get
    default_contracts = Path(__file__).resolve().parent.parent.parent / "contracts"
    parser = argparse.ArgumentParser(
        description="Notify customers of boxoffice reservation outcomes."
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=env("NOTIFIER_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers, host:port[,host:port] (NOTIFIER_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--namespace",
        default=env("NOTIFIER_NAMESPACE") or None,
        help="the platform's Kafka namespace, prefixing topics and groups (NOTIFIER_NAMESPACE)",
    )
    parser.add_argument(
        "--group",
        default=env("NOTIFIER_GROUP", "python-notifier"),
        help="consumer group, before the namespace prefix (NOTIFIER_GROUP)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(env("NOTIFIER_DB", "notifier.sqlite3")),
        help="SQLite database: inbox, messages, rejected records (NOTIFIER_DB)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(env("NOTIFIER_OUTPUT", "messages.jsonl")),
        help="where sent messages are appended, one JSON line each (NOTIFIER_OUTPUT)",
    )
    parser.add_argument(
        "--contracts",
        type=Path,
        default=Path(env("NOTIFIER_CONTRACTS", str(default_contracts))),
        help="the repository's contracts directory (NOTIFIER_CONTRACTS)",
    )
    parser.add_argument(
        "--hold-commit-ms",
        type=int,
        default=int(env("NOTIFIER_HOLD_COMMIT_MS", "0")),
        help="fault injection: wait this long between sending a message and "
        "committing its offset, so a test's kill lands in that window "
        "(NOTIFIER_HOLD_COMMIT_MS)",
    )
    args = parser.parse_args(argv)
    return Config(
        bootstrap_servers=args.bootstrap_servers,
        namespace=args.namespace,
        group=args.group,
        db_path=args.db,
        output_path=args.output,
        contracts_dir=args.contracts,
        hold_commit_ms=args.hold_commit_ms,
    )


# ------------------------------------------------------------- contracts


class Contracts:
    """The published JSON Schemas, one per event type. Each describes the
    whole CloudEvent (attributes and ``data``), so the envelope rebuilt
    from the headers is validated too, not only the payload."""

    def __init__(self, events_dir: Path) -> None:
        self.validators: dict[str, Draft202012Validator] = {}
        for path in sorted(events_dir.glob("*.schema.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
            self.validators[schema["title"]] = Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        if not self.validators:
            raise SystemExit(f"no event schemas in {events_dir}")

    def check(self, envelope: dict[str, Any]) -> Optional[str]:
        """Why the event breaks its contract, or None when it keeps it."""
        validator = self.validators.get(envelope.get("type", ""))
        if validator is None:
            return f"no published schema for type {envelope.get('type')!r}"
        # The most relevant error is enough to tell an operator what broke.
        error: Optional[ValidationError] = best_match(validator.iter_errors(envelope))
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"


class MalformedRecord(Exception):
    """A record that cannot even be read as a CloudEvent."""


def envelope_of(message: Message) -> dict[str, Any]:
    """Rebuilds the CloudEvent from a binary-mode record: ``ce_<name>``
    headers are its attributes, ``content-type`` its datacontenttype, the
    value its data."""
    envelope: dict[str, Any] = {}
    for name, raw in message.headers() or []:
        if raw is None:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedRecord(f"header {name} is not UTF-8") from error
        if name.startswith("ce_"):
            envelope[name[3:]] = text
        elif name == "content-type":
            envelope["datacontenttype"] = text
    for name in INTEGER_ATTRIBUTES:
        if name in envelope:
            try:
                envelope[name] = int(envelope[name])
            except ValueError as error:
                raise MalformedRecord(f"ce_{name} is not a number") from error
    value = message.value()
    try:
        envelope["data"] = json.loads(value) if value else None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedRecord("the record value is not JSON") from error
    return envelope


# ---------------------------------------------------------------- wording


@dataclass(frozen=True)
class Notice:
    reservation_id: str
    user_id: str
    kind: str
    text: str


def tickets_phrase(booking: dict[str, Any]) -> str:
    """What was booked, in the words of its product line."""
    seats: list[str] = booking.get("seats") or []
    if booking["listingKind"] == "bike":
        return "a rental"
    if len(seats) == 1:
        return f"seat {seats[0]}"
    if seats:
        return "seats " + ", ".join(seats)
    quantity = booking["quantity"]
    return "1 ticket" if quantity == 1 else f"{quantity} tickets"


def notice_for(event_type: str, data: dict[str, Any]) -> Optional[Notice]:
    """The message for an event, worded as the platform's notifier words
    it, or None when the customer need not hear about it (a booking only
    placed is not news yet: its outcome is)."""
    if event_type == "boxoffice.payment.refunded":
        charge = data["charge"]
        reservation = charge.get("reservationId")
        if reservation is None:  # buying points: no booking to name
            return None
        return Notice(
            reservation,
            charge["userId"],
            "refunded",
            f"Your payment of {charge['amount']} for reservation {reservation} was refunded.",
        )
    booking = data.get("booking")
    if not event_type.startswith("boxoffice.reservation.") or booking is None:
        return None
    tickets = tickets_phrase(booking)
    title = booking["listingTitle"]
    kind_and_text: Optional[tuple[str, str]] = {
        "boxoffice.reservation.confirmed": (
            "reserved",
            f"Your reservation of {tickets} for {title} is confirmed "
            f"(amount {booking['amount']}).",
        ),
        "boxoffice.reservation.rejected": (
            "rejected",
            f"Your reservation of {tickets} for {title} was cancelled "
            f"automatically: {data.get('reason')}.",
        ),
        "boxoffice.reservation.expired": (
            "expired",
            f"Your reservation of {tickets} for {title} expired and was "
            f"cancelled: {data.get('reason')}.",
        ),
        "boxoffice.reservation.cancelled": (
            "cancelled",
            f"Your reservation of {tickets} for {title} is cancelled.",
        ),
        "boxoffice.reservation.returned": (
            "returned",
            f"{title} is back, thank you: your rental has ended.",
        ),
    }.get(event_type)
    if kind_and_text is None:
        return None
    kind, text = kind_and_text
    return Notice(booking["reservationId"], booking["userId"], kind, text)


# ------------------------------------------------------------------ store


SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS messages (
    event_id       TEXT PRIMARY KEY REFERENCES inbox (event_id),
    reservation_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    text           TEXT NOT NULL,
    sent           INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rejected (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    event_id    TEXT,
    event_type  TEXT,
    reason      TEXT NOT NULL,
    payload     TEXT,
    rejected_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- A redelivered bad record is parked once.
    PRIMARY KEY (topic, partition, "offset")
);
"""


class Store:
    """The notifier's own state, in SQLite: the inbox of handled event ids,
    the messages decided (and whether sent), and parked records."""

    def __init__(self, db_path: Path, output_path: Path) -> None:
        # isolation_level=None: transactions are opened explicitly below,
        # so it is plain which statements commit together.
        self.db = sqlite3.connect(db_path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that returned is on disk before the offset moves.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.output_path = output_path

    def record(self, message: Message, envelope: dict[str, Any], notice: Optional[Notice]) -> bool:
        """Inbox row and message, in one transaction. False when the event
        is already in the inbox (a redelivery): nothing changes then."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            inserted = self.db.execute(
                'INSERT OR IGNORE INTO inbox (event_id, event_type, subject, topic, partition, "offset") '
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    envelope["id"],
                    envelope["type"],
                    envelope["subject"],
                    message.topic(),
                    message.partition(),
                    message.offset(),
                ),
            ).rowcount
            if inserted and notice is not None:
                self.db.execute(
                    "INSERT INTO messages (event_id, reservation_id, user_id, kind, text) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (envelope["id"], notice.reservation_id, notice.user_id, notice.kind, notice.text),
                )
            self.db.execute("COMMIT")
            return bool(inserted)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def park(self, message: Message, envelope: dict[str, Any], reason: str) -> None:
        self.db.execute(
            'INSERT OR IGNORE INTO rejected (topic, partition, "offset", event_id, event_type, reason, payload) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                message.topic(),
                message.partition(),
                message.offset(),
                envelope.get("id"),
                envelope.get("type"),
                reason,
                (message.value() or b"").decode("utf-8", errors="replace"),
            ),
        )

    def reconcile(self) -> None:
        """After a crash the output file may hold a message the database
        does not know was sent (killed between the append and the update),
        or end in a torn line (killed mid-append). The file is the channel's
        own record: drop a torn tail and mark what it holds as sent, so the
        send below does not repeat it."""
        if not self.output_path.exists():
            return
        with open(self.output_path, "rb+") as output:
            content = output.read()
            complete = content[: content.rfind(b"\n") + 1]
            if len(complete) != len(content):
                log.warning("dropping a torn last line from %s", self.output_path)
                output.truncate(len(complete))
        sent = [json.loads(line)["eventId"] for line in complete.splitlines() if line.strip()]
        self.db.execute("BEGIN")
        self.db.executemany("UPDATE messages SET sent = 1 WHERE event_id = ?", [(i,) for i in sent])
        self.db.execute("COMMIT")

    def send_pending(self) -> int:
        """Sends (appends) every decided message not sent yet; how many."""
        pending = self.db.execute(
            "SELECT event_id, reservation_id, user_id, kind, text FROM messages "
            "WHERE sent = 0 ORDER BY rowid"
        ).fetchall()
        for event_id, reservation_id, user_id, kind, text in pending:
            line = json.dumps(
                {
                    "eventId": event_id,
                    "reservationId": reservation_id,
                    "userId": user_id,
                    "kind": kind,
                    "text": text,
                },
                ensure_ascii=False,
            )
            # One write of a whole line, flushed to disk before it counts as
            # sent: a kill leaves the line whole, torn (dropped at start), or
            # absent (sent again).
            with open(self.output_path, "a", encoding="utf-8") as output:
                output.write(line + "\n")
                output.flush()
                os.fsync(output.fileno())
            self.db.execute("UPDATE messages SET sent = 1 WHERE event_id = ?", (event_id,))
            log.info("sent %s to user %s about reservation %s", kind, user_id, reservation_id)
        return len(pending)

    def close(self) -> None:
        self.db.close()


# ------------------------------------------------------------------- loop


class Stopping:
    """Set by SIGTERM/SIGINT: the loop finishes the record in hand, commits
    it and leaves the group, instead of dying mid-record."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the current record", signum)
        self.requested = True


def handle(message: Message, contracts: Contracts, store: Store) -> bool:
    """Handles one record up to (not including) its offset commit; whether
    a message was sent for it."""
    try:
        envelope = envelope_of(message)
    except MalformedRecord as error:
        log.warning("parked record %s/%d@%d: %s", message.topic(), message.partition(), message.offset(), error)
        store.park(message, {}, str(error))
        return False
    problem = contracts.check(envelope)
    if problem is not None:
        log.warning(
            "parked event %s (%s) at %s/%d@%d: %s",
            envelope.get("id"),
            envelope.get("type"),
            message.topic(),
            message.partition(),
            message.offset(),
            problem,
        )
        store.park(message, envelope, problem)
        return False
    notice = notice_for(envelope["type"], envelope["data"])
    if not store.record(message, envelope, notice):
        log.info("event %s (%s) already in the inbox: skipped", envelope["id"], envelope["type"])
        return False
    return store.send_pending() > 0


def run(config: Config) -> int:
    contracts = Contracts(config.contracts_dir / "events")
    store = Store(config.db_path, config.output_path)
    store.reconcile()
    # Messages decided before a crash but never appended go out now.
    store.send_pending()
    stopping = Stopping()
    consumer = Consumer(
        {
            "bootstrap.servers": config.bootstrap_servers,
            "group.id": config.qualified(config.group),
            "client.id": "python-notifier",
            # Offsets move only after the SQLite transaction (see the module doc).
            "enable.auto.commit": False,
            # A new group reads the topics from their start: nothing is missed.
            "auto.offset.reset": "earliest",
            # The platform's own consumers' timing: a dead member's
            # partitions move on within seconds.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 2000,
            # Also the rebalance timeout librdkafka sends: how long a join
            # may wait for members that will never rejoin (one killed hard).
            # The loop polls every 0.5 s, so 10 s is never hit by a live one.
            "max.poll.interval.ms": 10000,
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": False,
        }
    )
    topics = [config.qualified(topic) for topic in TOPICS]
    consumer.subscribe(
        topics,
        on_assign=lambda _, parts: log.info("partitions assigned: %d", len(parts)),
    )
    log.info(
        "consuming %s as group %s on %s", ", ".join(topics), config.qualified(config.group), config.bootstrap_servers
    )
    try:
        while not stopping.requested:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                # A topic not created yet or a broker hiccup: librdkafka
                # retries on its own; fatal errors end the process.
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                continue
            sent = handle(message, contracts, store)
            if sent and config.hold_commit_ms > 0:
                time.sleep(config.hold_commit_ms / 1000)
            # Synchronous: when it returns, a restart starts after this record.
            consumer.commit(message=message, asynchronous=False)
    finally:
        # Leaves the group at once, so its partitions move without waiting
        # out the session timeout.
        consumer.close()
        store.close()
        log.info("stopped")
    return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(parse_config(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
