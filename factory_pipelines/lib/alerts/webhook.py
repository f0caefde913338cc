"""The optional alert webhook: one signed JSON POST per alert, retried, its outcome kept on the alert row.

The body is signed with HMAC-SHA256 under the configured secret (header `X-Factory-Signature: sha256=<hex>`,
as GitHub signs its webhooks), so the receiver knows the alert came from the factory and was not altered.
Only the configured URL is contacted: no redirects are followed and no proxy is read from the environment.
Neither the secret nor the URL's path (a Slack-style URL is itself a secret) appears in a log line or in a
recorded error; `Webhook.target` (scheme, host, port) is what is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from factory_pipelines.lib.alerts.store import mark_delivery, undelivered

SIGNATURE_HEADER = "X-Factory-Signature"
PAYLOAD_FIELDS = ("alert_id", "check_name", "asset_key", "partition", "agent", "severity", "observed", "bound",
                  "description", "metadata", "run_id", "evaluated_at", "created_at")


class DeliveryError(RuntimeError):
    """The webhook did not accept an alert after `attempts` POSTs; `str()` is safe to record and log."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class _Retryable(RuntimeError):
    """A response worth trying again (5xx, 408, 429)."""


@dataclass(frozen=True)
class Webhook:
    """Where alerts go and how hard to try. `secret` is never part of the repr."""

    url: str
    secret: str | None = field(default=None, repr=False)
    timeout_s: float = 5.0
    attempts: int = 3
    backoff_s: float = 0.5  # first wait; then doubling, at most 8 s

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("the alert webhook must be an http:// or https:// URL")
        if self.attempts < 1:
            raise ValueError("a webhook needs at least one attempt")

    @property
    def target(self) -> str:
        """Scheme, host and port: what logs may show of the URL."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def __repr__(self) -> str:
        return f"Webhook(target={self.target!r}, attempts={self.attempts}, timeout_s={self.timeout_s})"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`: `sha256=` and the hex HMAC-SHA256 under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body(alert: dict[str, Any]) -> bytes:
    """The JSON sent for one alert row: its identifying fields, compact and key-sorted (what is signed)."""
    payload = {"kind": "check_failed", **{k: alert.get(k) for k in PAYLOAD_FIELDS}}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def _safe(webhook: Webhook, text: str) -> str:
    for secret in (webhook.url, webhook.secret):
        if secret:
            text = text.replace(secret, webhook.target if secret == webhook.url else "***")
    return text[:300]


def post(webhook: Webhook, alert: dict[str, Any]) -> int:
    """POST one alert, retrying transport errors and 5xx/408/429 with exponential backoff; returns the POSTs made.

    Raises DeliveryError (with the POSTs made) when the webhook refuses (another 4xx) or stays down."""
    import httpx
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    data = body(alert)
    headers = {"Content-Type": "application/json", "User-Agent": "ai-factory-alerts",
               "X-Factory-Alert-Id": str(alert["alert_id"])}
    if webhook.secret:
        headers[SIGNATURE_HEADER] = sign(data, webhook.secret)
    made = 0
    try:
        with httpx.Client(timeout=webhook.timeout_s, follow_redirects=False, trust_env=False) as client:
            for attempt in Retrying(stop=stop_after_attempt(webhook.attempts), reraise=True,
                                    wait=wait_exponential(multiplier=webhook.backoff_s, max=8),
                                    retry=retry_if_exception_type((httpx.TransportError, _Retryable))):
                with attempt:
                    made += 1
                    response = client.post(webhook.url, content=data, headers=headers)
                    if response.status_code >= 500 or response.status_code in (408, 429):
                        raise _Retryable(f"HTTP {response.status_code} from {webhook.target}")
                    if response.status_code >= 300:
                        raise DeliveryError(f"HTTP {response.status_code} from {webhook.target} (not retried)", made)
    except DeliveryError:
        raise
    except (httpx.HTTPError, _Retryable) as exc:
        message = str(exc) if isinstance(exc, _Retryable) else f"{type(exc).__name__}: {exc}"
        raise DeliveryError(_safe(webhook, message), made) from None
    return made


@dataclass
class DeliveryReport:
    """What one delivery pass did: alerts accepted, the one that failed (the pass stops there), those left."""

    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    left: int = 0


def deliver_pending(con: Any, webhook: Webhook, *, limit: int = 20,
                    log: Callable[[str], None] | None = None) -> DeliveryReport:
    """Send the undelivered alerts (pending or failed, oldest first), each outcome recorded on its row.

    A failure ends the pass: the endpoint is down, and waiting on each remaining alert in turn would only
    stretch the sensor tick; they stay `pending` or `failed` for the next pass."""
    report = DeliveryReport()
    queue = undelivered(con, limit=limit)
    for k, alert in enumerate(queue):
        try:
            attempts = post(webhook, alert)
        except DeliveryError as exc:
            mark_delivery(con, alert["alert_id"], delivered=False, attempts=exc.attempts, error=str(exc))
            report.failed.append((alert["alert_id"], str(exc)))
            report.left = len(queue) - k - 1
            if log:
                log(f"alert {alert['alert_id'][:12]} not delivered to {webhook.target} after {exc.attempts} "
                    f"POST(s): {exc}; kept, tried again next tick")
            break
        mark_delivery(con, alert["alert_id"], delivered=True, attempts=attempts)
        report.delivered.append(alert["alert_id"])
    return report
