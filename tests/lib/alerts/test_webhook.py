"""The webhook, against a real HTTP server on a free loopback port that checks each body's signature: delivered
once, a dead or failing webhook never loses the alert row (status, attempts and error kept), redelivered later."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from factory_pipelines.lib.alerts.store import CheckFailure, get_alert, record
from factory_pipelines.lib.alerts.webhook import DeliveryError, Webhook, body, deliver_pending, post, sign
from tests.lib.alerts.receiver import free_port, receiver

SECRET = "not-a-real-secret-7f3a"


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def failures(n: int) -> list[CheckFailure]:
    return [CheckFailure("contract_tickets_v1", "raw/tickets", f"run-{k}", partition="2026-11-06",
                         metadata={"observed": k, "bound": 0}) for k in range(n)]


def hook(url: str, **kw: object) -> Webhook:
    return Webhook(url=url, secret=SECRET, timeout_s=2, backoff_s=0.01, **kw)  # type: ignore[arg-type]


def test_alerts_are_delivered_signed_once_each(con) -> None:
    new = record(con, failures(2), deliver=True)
    with receiver(SECRET) as server:
        report = deliver_pending(con, hook(server.url))
        assert sorted(report.delivered) == sorted(new) and report.failed == []
        assert deliver_pending(con, hook(server.url)).delivered == []  # nothing left to send
    assert server.rejected == 0 and server.posts == 2
    assert {a["alert_id"] for a in server.accepted} == set(new)
    sent = next(a for a in server.accepted if a["alert_id"] == new[0])
    assert (sent["kind"], sent["check_name"], sent["asset_key"], sent["partition"], sent["severity"]) == (
        "check_failed", "contract_tickets_v1", "raw/tickets", "2026-11-06", "error")
    row = get_alert(con, new[0])
    assert (row["delivery_status"], row["delivery_attempts"], row["delivery_error"]) == ("delivered", 1, None)
    assert row["delivered_at"] is not None


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(con) -> None:
    (new,) = record(con, failures(1), deliver=True)
    with receiver("the-receivers-secret") as server:
        report = deliver_pending(con, hook(server.url, attempts=3))
    assert server.posts == 1 and server.rejected == 1 and report.failed[0][0] == new
    row = get_alert(con, new)
    assert (row["delivery_status"], row["delivery_attempts"]) == ("failed", 1)
    assert "HTTP 401" in row["delivery_error"]


def test_a_dead_webhook_keeps_the_row_counts_attempts_and_redelivers_when_it_is_back(con, caplog) -> None:
    new = record(con, failures(3), deliver=True)
    port = free_port()  # nothing listens there yet
    dead = hook(f"http://127.0.0.1:{port}/hooks/factory", attempts=3)
    logger = logging.getLogger("test.alerts")
    with caplog.at_level(logging.INFO, logger="test.alerts"):
        report = deliver_pending(con, dead, log=logger.warning)
    assert report.delivered == [] and len(report.failed) == 1 and report.left == 2  # the pass stops at the first
    assert con.execute("SELECT count(*) FROM alerts.check_failures").fetchall()[0][0] == 3
    statuses = {get_alert(con, a)["alert_id"]: get_alert(con, a) for a in new}
    failed = [r for r in statuses.values() if r["delivery_status"] == "failed"]
    assert len(failed) == 1 and failed[0]["delivery_attempts"] == 3 and "ConnectError" in failed[0]["delivery_error"]
    assert sum(r["delivery_status"] == "pending" for r in statuses.values()) == 2
    deliver_pending(con, dead)
    assert get_alert(con, failed[0]["alert_id"])["delivery_attempts"] == 6  # every tick adds its attempts
    with receiver(SECRET, port=port) as server:
        report = deliver_pending(con, dead)
    assert sorted(report.delivered) == sorted(new) and server.rejected == 0
    assert {r["delivery_status"] for r in (get_alert(con, a) for a in new)} == {"delivered"}
    assert SECRET not in caplog.text and "/hooks/factory" not in caplog.text and f"127.0.0.1:{port}" in caplog.text


def test_server_errors_are_retried_then_recorded(con) -> None:
    (new,) = record(con, failures(1), deliver=True)
    with receiver(SECRET, status=503) as server:
        with pytest.raises(DeliveryError) as raised:
            post(hook(server.url, attempts=2), get_alert(con, new))
        deliver_pending(con, hook(server.url, attempts=2))
    assert raised.value.attempts == 2 and server.posts == 4
    row = get_alert(con, new)
    assert (row["delivery_status"], row["delivery_attempts"], row["delivery_error"]) == (
        "failed", 2, f"HTTP 503 from http://127.0.0.1:{server.port}")


def test_the_signature_is_hmac_sha256_of_the_exact_body_and_the_secret_stays_out_of_repr() -> None:
    import hashlib
    import hmac

    data = body({"alert_id": "abc", "observed": 0.3})
    assert data.startswith(b'{"agent":null,"alert_id":"abc"')
    assert sign(data, "k") == "sha256=" + hmac.new(b"k", data, hashlib.sha256).hexdigest()
    webhook = Webhook(url="https://hooks.example.com/services/T0/B0/XYZ", secret=SECRET)
    assert SECRET not in repr(webhook) and "XYZ" not in repr(webhook) and webhook.target == "https://hooks.example.com"
    with pytest.raises(ValueError, match="http"):
        Webhook(url="file:///etc/passwd")
