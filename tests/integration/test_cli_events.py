"""``vochi-crm events list|show``, ``tail-logs`` and ``replay-event`` through Typer's CliRunner
against a real database: output forms, exit codes, bad input, quiet cron runs, no secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from typer.testing import CliRunner, Result

from tests.integration.test_journal import FAKE_KEY, Seed
from vochi_cli.main import app


@pytest.fixture
def seed(env: dict[str, str], database_url: str) -> Iterator[Seed]:
    s = Seed(database_url)
    s.unit("0367")
    yield s
    s.close()


@pytest.fixture
def cli(env: dict[str, str]) -> CliRunner:
    return CliRunner(env={"COLUMNS": "200"})


def run(cli: CliRunner, *argv: str) -> Result:
    return cli.invoke(app, list(argv))


def test_events_list_table_and_json(cli: CliRunner, seed: Seed) -> None:
    failed = seed.event("0367", "1712345678.42", "hangup", "failed")
    seed.event("0367", "1712345678.43", "hangup", "delivered", last_error=None)
    table = run(cli, "events", "list", "--unit", "0367", "--status", "failed,expired")
    assert table.exit_code == 0, table.output
    assert "1 event(s)" in table.output and "1712345678.42" in table.output
    assert "HTTP 400" in table.output and "1712345678.43" not in table.output

    data = json.loads(run(cli, "events", "list", "--since", "1h", "--json").stdout)
    assert [e["status"] for e in data] == ["delivered", "failed"]
    assert data[1]["id"] == failed and "payload" not in data[1]


def test_events_show_tells_the_story_without_secrets(cli: CliRunner, seed: Seed) -> None:
    event = seed.event("0367", "1712345678.42", "hangup", "failed",
                       payload={"UniqueId": "1712345678.42", "Token": FAKE_KEY})
    seed.log("0367", "1712345678.42", "call_event:hangup", "success", ms=120)
    seed.log("0367", "1712345678.42", "calls_upload", "error", error=f"apiKey={FAKE_KEY} bad",
             request={"uniqueId": "1712345678.42", "apiKey": FAKE_KEY})
    shown = run(cli, "events", "show", str(event))
    assert shown.exit_code == 0, shown.output
    assert "Call 1712345678.42 of unit 0367: 1 event(s), 2 RetailCRM call(s)" in shown.output
    assert "calls_upload" in shown.output and "120" in shown.output
    as_json = run(cli, "events", "show", "--call", "1712345678.42", "--json")
    assert as_json.exit_code == 0
    story = json.loads(as_json.stdout)
    assert [r["event_type"] for r in story["requests"]] == ["call_event:hangup", "calls_upload"]
    assert FAKE_KEY not in shown.output + as_json.output


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["events", "list", "--unit", "9999"], "unit '9999' does not exist"),
        (["events", "list", "--since", "yesterday"], "--since"),
        (["events", "list", "--since", "1h", "--until", "2h"], "before --since"),
        (["events", "list", "--status", "lost"], "unknown status"),
        (["events", "show", "424242"], "unknown event id 424242"),
        (["events", "show"], "give an event id or --call"),
        (["tail-logs", "--unit", "9999"], "unit '9999' does not exist"),
        (["tail-logs", "--since", "soon"], "--since"),
        (["tail-logs", "--status", "weird"], "unknown status"),
        (["replay-event", "424242"], "unknown event id 424242"),
        (["replay-event", "1", "--status", "failed"], "cannot be combined with --status"),
        (["replay-event", "1", "--since", "2h"], "cannot be combined with --since"),
        (["replay-event", "--since", "1h", "--until", "2h"], "before --since"),
        (["replay-event", "--since", "whenever"], "--since"),
        (["replay-event", "--status", "delivered"], "cannot be replayed"),
        (["replay-event", "--unit", "9999"], "unit '9999' does not exist"),
        (["replay-event", "--unit", "0500"], "no RetailCRM config"),
        (["replay-event", "--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_one_clear_error_exit_2_nothing_changed(
    cli: CliRunner, seed: Seed, argv: list[str], needle: str
) -> None:
    seed.unit("0500", None)
    event = seed.event("0367", "a")
    result = run(cli, *argv)
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split())  # the panel may wrap a long line
    assert seed.status(event)[0] == "failed"


def test_replay_cron_contract(cli: CliRunner, seed: Seed) -> None:
    # nothing to do: no output at all, exit 0; --json still prints its summary
    quiet = run(cli, "replay-event", "--status", "failed", "--since", "2h")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    summary = json.loads(run(cli, "replay-event", "--json").stdout)
    assert summary["requeued"] == 0 and summary["ok"] is True

    ids = [seed.event("0367", f"c{i}") for i in range(3)]
    seed.event("0367", "old", age=timedelta(hours=3))
    dry = run(cli, "replay-event", "--since", "2h", "--dry-run")
    assert dry.exit_code == 0 and "Would requeue 3 event(s)" in dry.output
    assert all(seed.status(i)[0] == "failed" for i in ids)

    done = run(cli, "replay-event", "--since", "2h", "--limit", "2", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["ids"] == ids[:2] and data["more"] is True and data["by_unit"] == {"0367": 2}
    assert len(done.stdout.splitlines()) == 1  # one line per run in cron's log
    human = run(cli, "replay-event", "--since", "2h")
    assert human.exit_code == 0 and "requeued 1 event(s) (0367: 1)" in human.output


def test_replay_errors_exit_1(cli: CliRunner, seed: Seed) -> None:
    seed.unit("0600", {"enabled": False, "api_url": "https://x.retailcrm.ru", "api_key": "k" * 12})
    good = seed.event("0367", "a")
    seed.event("0600", "b")
    result = run(cli, "replay-event")
    assert result.exit_code == 1
    assert "requeued 1 event(s)" in result.stdout
    assert "unit 0600: the RetailCRM integration is disabled" in result.stderr
    delivered = seed.event("0367", "c", status="delivered", last_error=None)
    named = run(cli, "replay-event", str(delivered), "--json")
    assert named.exit_code == 1
    assert json.loads(named.stdout)["errors"] == [
        f"event {delivered} is not replayable (status delivered)"
    ]
    assert seed.status(good)[0] == "pending"


def test_tail_logs_lists_latest_masked(cli: CliRunner, seed: Seed) -> None:
    seed.log("0367", "c1", "call_event:in", "success", ms=77,
              request={"uniqueId": "c1", "apiKey": FAKE_KEY, "X-API-KEY": FAKE_KEY})
    seed.log("0367", "c1", "calls_upload", "error", error="HTTP 400 validation")
    seed.event("0367", "c1", "hangup", "failed")
    table = run(cli, "tail-logs")
    assert table.exit_code == 0, table.output
    assert "call_event:in" in table.output and "77 ms" in table.output
    assert "event #" in table.output
    errors = run(cli, "tail-logs", "--status", "error", "--json")
    lines = [json.loads(line) for line in errors.stdout.splitlines()]
    assert {(x["kind"], x["status"]) for x in lines} == {("request", "error"), ("event", "failed")}
    everything = run(cli, "tail-logs", "--json", "--unit", "0367", "--call", "c1", "-n", "5")
    assert len(everything.stdout.splitlines()) == 3
    assert FAKE_KEY not in table.output + errors.output + everything.output
