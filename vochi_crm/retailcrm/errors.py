"""What can go wrong talking to RetailCRM, sorted by who has to act.

Delivery decides retry, fail or pause from the class alone (DESIGN §4), so every failure of the
client is one of three subclasses of :class:`vochi_crm.errors.VochiError`::

    VochiError
    └── RetailCrmError                 base; never raised itself
        ├── RetailCrmTransient         503 / exit 1  try again later: timeout, connection error,
        │                                            5xx, 408, 429/503 throttling (``retry_after``)
        ├── RetailCrmPermanent         502 / exit 1  this request will never succeed as sent:
        │                                            validation (400), unknown API method / object
        │                                            (404), a garbled 2xx body, ``success:false``
        │                                            with no known unit-level cause
        └── RetailCrmUnitMustAct       502 / exit 1  the unit's configuration must change: wrong or
                                                     missing key, access denied, account gone,
                                                     telephony module disabled, redirect

``http_status`` / ``exit_code`` are what *our* front-ends answer with (the VochiError contract);
``status`` is the HTTP status RetailCRM answered (``None`` when no answer arrived).

Every instance carries ``reason`` (a short stable code for logs, metrics and alerts), RetailCRM's
``error_msg`` and ``errors`` exactly as sent, and the ``exchange`` record of the call (an
:class:`~vochi_crm.retailcrm.exchange.Exchange`, filled in by the client), so a caller journals
failures like successes.
Messages, ``repr`` and ``to_dict`` never contain the API key: the client never hands it to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from vochi_crm.errors import VochiError

if TYPE_CHECKING:
    from vochi_crm.retailcrm.exchange import Exchange

#: ``reason`` codes of :class:`RetailCrmUnitMustAct`, for alert texts.
UNIT_REASONS: dict[str, str] = {
    "missing_key": "RetailCRM says the API key is missing",
    "invalid_key": "RetailCRM rejects the API key",
    "access_denied": "the API key lacks a permission (method or site)",
    "account_missing": "the RetailCRM account does not exist at this address",
    "telephony_disabled": "the telephony integration module is not active in RetailCRM",
    "redirect": "RetailCRM redirects: the account address is wrong or has moved",
}


class RetailCrmError(VochiError):
    """Base of the three outcome classes; carries what RetailCRM said."""

    title = "RetailCRM error"
    kind: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        error_msg: str | None = None,
        errors: dict[str, Any] | list[Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.error_msg = error_msg
        self.errors = errors
        self.retry_after = retry_after
        self.exchange: Exchange | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r}, "
            f"error_msg={self.error_msg!r}, errors={self.errors!r})"
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "error": self.title,
            "detail": self.message,
            "kind": self.kind,
            "reason": self.reason,
            "status": self.status,
            "errorMsg": self.error_msg,
            "errors": self.errors,
        }
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


class RetailCrmTransient(RetailCrmError):
    """Try again later; ``retry_after`` (seconds) when RetailCRM said how long to wait."""

    http_status = 503
    title = "RetailCRM temporarily unavailable"
    kind = "transient"


class RetailCrmPermanent(RetailCrmError):
    """The request is wrong for RetailCRM; repeating it unchanged cannot help."""

    http_status = 502
    title = "RetailCRM rejected the request"
    kind = "permanent"


class RetailCrmUnitMustAct(RetailCrmError):
    """The unit's RetailCRM settings (key, permissions, address, module) need a human."""

    http_status = 502
    title = "RetailCRM settings need attention"
    kind = "unit_must_act"

    @property
    def hint(self) -> str:
        """One line for an alert: what the unit's admin has to fix."""
        return UNIT_REASONS.get(self.reason, "the unit's RetailCRM settings need attention")
