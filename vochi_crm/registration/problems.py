"""What to tell an operator when RetailCRM refuses: one hint per failure reason.

Registration (``vochi-crm register``, the journal) and the connection test show the same advice
for the same failure, so it is written once, here, keyed by the ``reason`` codes of
:mod:`vochi_crm.retailcrm.errors` and the client's transport reasons.
"""

from __future__ import annotations

from vochi_crm.errors import VochiError
from vochi_crm.retailcrm import RetailCrmError

KEYS_PAGE = "RetailCRM → Settings → Integration → API access keys"


class NotConfigured(VochiError):
    """The unit exists but has no RetailCRM address and key: nothing can be registered or
    tested. Exit 2 like any bad input: the command was asked something impossible."""

    http_status = 409
    exit_code = 2
    title = "Not configured"

    @classmethod
    def for_unit(cls, number: str) -> NotConfigured:
        return cls(
            f"unit {number} has no RetailCRM config (api_url, api_key): "
            f"vochi-crm config set {number} api_url=<account address> api_key=-"
        )


def hint_for(error: RetailCrmError, unit: str, *, method: str | None = None) -> str:
    """One line: what to do about ``error`` (``method`` names the API path it concerned)."""
    reason = error.reason
    set_key = f"vochi-crm config set {unit} api_key=-"
    set_url = f"vochi-crm config set {unit} api_url=https://<account>.retailcrm.ru"
    if reason in ("invalid_key", "missing_key"):
        return f"RetailCRM rejects the API key: create a key in {KEYS_PAGE}, then {set_key}"
    if reason == "access_denied":
        what = f"'{method}'" if method else "the methods vochi-crm calls"
        return f"the API key may not call {what}: allow it for the key in {KEYS_PAGE}"
    if reason == "account_missing":
        return f"no RetailCRM account answers at this address (an HTML page came back): {set_url}"
    if reason == "redirect":
        return f"the address redirects elsewhere: use the account's exact https address: {set_url}"
    if reason == "telephony_disabled":
        return "the telephony module is not active in RetailCRM: run vochi-crm register " + unit
    if reason == "timeout":
        return (
            "RetailCRM did not answer in time: check the address and this server's network "
            "path to it; if RetailCRM is slow, try again later"
        )
    if reason in ("connect", "network"):
        return f"cannot connect: check the host name in api_url, DNS and firewalls ({set_url})"
    if reason.startswith("http_"):
        return "RetailCRM is failing or throttling (HTTP 5xx/429): try again in a few minutes"
    if reason in ("bad_response", "method_not_found"):
        return f"the address answers, but not as the RetailCRM API v5: {set_url}"
    if reason == "validation":
        return (
            "RetailCRM rejected the request as invalid: check VOCHI_PUBLIC_BASE_URL (a public "
            "https address) and VOCHI_RETAILCRM__LOGO_URL (an SVG); details in the journal"
        )
    return "see RetailCRM's answer in the journal (integration_logs) for details"
