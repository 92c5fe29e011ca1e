"""The clerk's `expediente-billing`: a bank file goes in chunk by chunk with a progress line, a
stopped import goes on from the first row billing has not recorded, a file imported already is
said to be so, and the month's statements run slice by slice. Billing is a hand-written fake."""

from __future__ import annotations

import io

import pytest
from marshmallow import ValidationError
from nameko.exceptions import RemoteError

from services.billing import cli
from services.billing.bankfile import BankFile, BankRowSchema, reason

ROW = {"fecha": "2026-03-31", "concepto": "agua", "cuenta": "AG-004512", "importe": "350.00"}


def bank_file(count: int, bad: tuple[int, ...] = ()) -> BankFile:
    """`count` payments on lines 2.. (`bad` indexes refused by billing); a header-only file: 0."""
    rows = [{"row": n + 2, "referencia": f"BNK-{n:06d}", **ROW} for n in range(count)]
    for n in bad:
        rows[n]["importe"] = "1,850.50"
    return BankFile("f" * 64, "pagos.csv", rows)


class FakeBilling:
    """Billing's import as the clerk sees it: rows recorded in order, each reference once."""

    def __init__(self, rows_done: int = 0, stop_at_call: int | None = None,
                 stuck: bool = False) -> None:
        self.status = {"file_id": None, "filename": None, "rows_total": 0, "rows_done": rows_done,
                       "applied": rows_done, "duplicates": 0, "rejected": 0, "finished": False}
        self.references: set[str] = set()
        self.calls: list[tuple[int, int]] = []  # (first_row_index, rows) of each call
        self.stop_at_call, self.stuck = stop_at_call, stuck

    def bank_import_status(self, file_id):
        return dict(self.status, file_id=file_id)

    def import_bank_rows(self, file_id, filename, rows_total, first_row_index, rows):
        self.calls.append((first_row_index, len(rows)))
        if self.stuck:
            return {"rows_done": first_row_index, "applied": 0, "duplicates": 0, "rejected": []}
        answer = {"applied": 0, "duplicates": 0, "rejected": []}
        for row in rows:
            try:
                payment = BankRowSchema().load(row)
            except ValidationError as error:
                answer["rejected"].append({"row": row["row"], "error": reason(error)})
                continue
            seen = payment["reference"] in self.references
            self.references.add(payment["reference"])
            answer["duplicates" if seen else "applied"] += 1
        self.status.update(
            filename=filename, rows_total=rows_total, rows_done=first_row_index + len(rows),
            applied=self.status["applied"] + answer["applied"],
            duplicates=self.status["duplicates"] + answer["duplicates"],
            rejected=self.status["rejected"] + len(answer["rejected"]))
        self.status["finished"] = self.status["rows_done"] == rows_total
        if len(self.calls) == self.stop_at_call:  # the chunk is applied, the answer never read
            raise KeyboardInterrupt
        return dict(answer, rows_done=self.status["rows_done"])


def run_import(billing, bank, chunk=4):
    out, err = io.StringIO(), io.StringIO()
    status = cli.import_bank(billing, bank, chunk, out, err, clock=Clock())
    return status, out.getvalue(), err.getvalue()


class Clock:
    """Two seconds pass each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 2
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---- the progress line --------------------------------------------------------------------------

def test_the_progress_line_says_how_far_how_fast_and_how_long_to_go():
    assert cli.render(1500, 5000, 250.0) == (
        "[######..............] 1,500/5,000 rows  30.0 %  250 rows/s  ETA 14s")
    assert cli.render(0, 200_000, None, "accounts") == (
        "[....................] 0/200,000 accounts  0.0 %  -- accounts/s  ETA --")


def test_the_progress_line_shows_100_percent_only_when_all_is_done():
    assert "99.9 %" in cli.render(199_999, 200_000, 1000.0)
    assert "[####################] 200,000/200,000 rows  100.0 %" in cli.render(
        200_000, 200_000, 1000.0)


@pytest.mark.parametrize("seconds, shown", [(0.4, "0s"), (45, "45s"), (185, "3m 05s"),
                                            (3720, "1h 02m"), (-3, "0s")])
def test_a_time_to_go_reads_as_a_clerk_says_it(seconds, shown):
    assert cli.duration(seconds) == shown


def test_on_a_terminal_the_line_is_redrawn_in_place_and_ended_when_done():
    screen = Terminal()
    with cli.Progress(1000, screen, clock=Clock()) as progress:
        progress.update(500)
        progress.update(1000)
    drawn = screen.getvalue()
    assert drawn.startswith("\r[##########..........] 500/1,000 rows  50.0 %  250 rows/s  ETA 2s")
    assert drawn.count("\r") == 2 and drawn.endswith(" ETA 0s\n")


def test_on_a_terminal_a_shorter_line_covers_the_longer_one_before_it():
    screen = Terminal()
    progress = cli.Progress(100, screen, clock=Clock())
    progress.update(10)
    first = screen.getvalue()
    progress.update(9)
    second = screen.getvalue()[len(first):]
    assert second == "\r" + "[#...................] 9/100 rows  9.0 %  2 rows/s  ETA 40s  "
    assert len(second) == len(first)


def test_in_a_log_a_line_is_written_each_tenth_only():
    log = io.StringIO()
    with cli.Progress(1000, log, clock=Clock()) as progress:
        for done in range(10, 1001, 10):
            progress.update(done)
    lines = log.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [
        f"{n:,}/1,000" for n in range(100, 1001, 100)]
    assert "\r" not in log.getvalue()


def test_a_resumed_import_counts_its_speed_from_where_it_resumed():
    log = io.StringIO()
    progress = cli.Progress(1000, log, done=600, clock=Clock())
    progress.update(800)  # 200 rows in 2 seconds: the 600 before were another run's
    assert "800/1,000 rows  80.0 %  100 rows/s  ETA 2s" in log.getvalue()


# ---- import-bank --------------------------------------------------------------------------------

def test_a_bank_file_goes_in_chunks_and_ends_with_its_summary():
    billing = FakeBilling()
    status, out, err = run_import(billing, bank_file(10))
    assert status == 0
    assert billing.calls == [(0, 4), (4, 4), (8, 2)]
    assert "applied:                10" in out and "already applied before: 0" in out
    assert "rejected:               0" in out and "10/10 rows  100.0 %" in err


def test_a_stopped_import_says_how_to_resume_and_goes_on_from_there():
    billing = FakeBilling(stop_at_call=2)
    bank = bank_file(10)
    status, out, err = run_import(billing, bank)
    assert status == cli.INTERRUPTED and out == ""
    # The second chunk reached billing, but its answer did not reach the clerk.
    assert err.endswith("stopped: run the same command again to resume from row 5 (line 6)\n")

    billing.stop_at_call = None
    status, out, err = run_import(billing, bank)
    assert status == 0
    assert billing.calls[2:] == [(8, 2)]  # billing had recorded the chunk: it is not sent again
    assert "resuming pagos.csv at row 9 (line 10) of 10" in err
    assert "applied:                10" in out


def test_rows_billing_has_not_recorded_are_sent_again_and_pay_once():
    billing = FakeBilling()
    bank = bank_file(6)
    run_import(billing, bank)
    billing.status.update(rows_done=2, finished=False)  # as if its last chunks were lost
    status, out, _ = run_import(billing, bank)
    assert status == 0 and billing.calls[-1] == (2, 4)
    assert "applied:                6" in out and "already applied before: 4" in out


def test_a_file_imported_already_is_said_to_be_with_its_totals():
    billing = FakeBilling()
    bank = bank_file(6, bad=(3,))
    assert run_import(billing, bank)[0] == 2
    calls = len(billing.calls)
    status, out, _ = run_import(billing, bank)
    assert status == 2 and len(billing.calls) == calls
    assert out.startswith(f"pagos.csv was imported already (file {'f' * 12}):\n")
    assert "applied:                5" in out and "rejected:               1" in out


def test_rejected_rows_are_listed_with_their_reasons_and_the_status_is_2():
    status, out, _ = run_import(FakeBilling(), bank_file(5, bad=(1, 4)))
    assert status == 2
    assert "rejected:               2" in out
    assert "    line 3: importe: write an amount as plain digits, e.g. 1850.50" in out
    assert "    line 6: " in out


def test_at_most_50_rejected_rows_are_listed():
    status, out, _ = run_import(FakeBilling(), bank_file(60, bad=tuple(range(60))), chunk=25)
    assert status == 2
    assert out.count("    line ") == 50 and out.endswith("    and 10 more\n")


def test_rejections_of_an_earlier_run_are_counted_but_not_listed_again():
    billing = FakeBilling(stop_at_call=2)
    bank = bank_file(12, bad=(0,))
    run_import(billing, bank)
    billing.stop_at_call = None
    status, out, _ = run_import(billing, bank)
    assert status == 2 and billing.calls[-1] == (8, 4) and "line 2:" not in out
    assert "(1 rejected in an earlier run: their reasons were listed then)" in out


def test_a_service_that_does_not_move_on_is_not_asked_for_ever():
    status, _, err = run_import(FakeBilling(stuck=True), bank_file(10))
    assert status == 1 and "billing recorded no row past row 0" in err


def test_a_service_that_knows_more_rows_than_the_file_has_stops_the_import():
    status, _, err = run_import(FakeBilling(rows_done=20), bank_file(10))
    assert status == 1 and "is this the same file?" in err


def test_an_error_of_the_service_stops_the_import_saying_where_to_resume():
    class Failing(FakeBilling):
        def import_bank_rows(self, *args):
            if self.calls:
                raise RemoteError("AccountNotFound", "no agua AG-004512")
            return super().import_bank_rows(*args)

    err = io.StringIO()
    with pytest.raises(RemoteError):
        cli.import_bank(Failing(), bank_file(10), 4, io.StringIO(), err)
    assert "stopped after 4 of 10 rows" in err.getvalue()
    assert "resume from row 5 (line 6)" in err.getvalue()


# ---- statements ---------------------------------------------------------------------------------

class FakeBatch:
    """Billing's statement batch of 5 accounts, 2 a slice: it keeps its cursor and counts (a
    first call goes on where the last run got to); an answer lists its own slice's failures."""

    KEYS = ["AG-0001", "AG-0002", "AG-0003", "AG-0004", "AG-0005"]

    def __init__(self, stop_at_call: int | None = None, failing: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple] = []
        self.stop_at_call, self.failing = stop_at_call, failing
        self.cursor, self.done, self.sent = None, 0, 0

    def statement_batch(self, period, kind, start_after):
        self.calls.append((period, kind, start_after))
        after = start_after or self.cursor
        first = 0 if after is None else self.KEYS.index(after) + 1
        keys = self.KEYS[first:first + 2]
        failed = [{"account": f"agua:{key}", "error": "no address"}
                  for key in keys if key in self.failing]
        self.done, self.sent = self.done + len(keys), self.sent + len(keys) - len(failed)
        self.cursor = keys[-1] if keys else after
        if len(self.calls) == self.stop_at_call:  # the slice is done, the answer never read
            raise KeyboardInterrupt
        return {"period": period, "done": self.done, "total": len(self.KEYS), "sent": self.sent,
                "skipped": 0, "failed": failed,
                "next": None if first + len(keys) >= len(self.KEYS) else self.cursor}


def run_statements(batch, kind="agua"):
    out, err = io.StringIO(), io.StringIO()
    status = cli.statements(batch, "2026-03", kind, out, err, clock=Clock())
    return status, out.getvalue(), err.getvalue()


def test_the_statements_run_slice_by_slice_to_the_end():
    batch = FakeBatch(failing=("AG-0004",))
    status, out, err = run_statements(batch)
    assert status == 2
    assert [call[2] for call in batch.calls] == [None, "AG-0002", "AG-0004"]
    assert out == ("statements 2026-03 (agua): 5 accounts\n  sent:    4\n  skipped: 0\n"
                   "  failed:  1\n    agua:AG-0004: no address\n")
    assert "5/5 accounts  100.0 %" in err


def test_stopped_statements_go_on_where_billing_got_to_when_run_again():
    batch = FakeBatch(stop_at_call=2)
    status, out, err = run_statements(batch, kind=None)
    assert status == cli.INTERRUPTED and out == ""
    assert err.endswith("stopped after 2 of 5 accounts: run the same command again to go on "
                        "from there\n")
    batch.stop_at_call = None
    status, out, _ = run_statements(batch, kind=None)
    assert status == 0 and batch.calls[-1] == ("2026-03", None, None)
    assert out.startswith("statements 2026-03: 5 accounts\n  sent:    5\n")


def test_a_batch_that_does_not_move_on_is_not_asked_for_ever():
    class Stuck(FakeBatch):
        def statement_batch(self, period, kind, start_after):
            return dict(super().statement_batch(period, kind, start_after), next="AG-0002")

    status, _, err = run_statements(Stuck())
    assert status == 1 and "billing's batch did not move past AG-0002" in err


# ---- the command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("period", ["2026-13", "2026-3", "03-2026", "2026-03-01"])
def test_a_period_is_a_month_written_yyyy_mm(period, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["statements", period])
    assert stopped.value.code == 2 and "a period is YYYY-MM" in capsys.readouterr().err


@pytest.mark.parametrize("chunk", ["0", "1001", "-5", "ten"])
def test_a_chunk_is_1_to_1000_rows_as_billing_takes_them(chunk, capsys):
    with pytest.raises(SystemExit):
        cli.main(["import-bank", "pagos.csv", "--chunk", chunk])
    assert "a whole number from 1 to 1,000" in capsys.readouterr().err


def test_a_bad_file_is_refused_before_billing_is_called(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "on_billing", lambda args, work: pytest.fail("called billing"))
    path = tmp_path / "pagos.csv"
    path.write_text("ref,date,amount\n")
    assert cli.main(["import-bank", str(path)]) == 1
    assert capsys.readouterr().err.startswith("refused: pagos.csv does not start with the header")


def test_the_command_reads_the_file_and_imports_it(tmp_path, monkeypatch, capsys):
    billing = FakeBilling()
    monkeypatch.setattr(cli, "on_billing", lambda args, work: work(billing))
    path = tmp_path / "pagos.csv"
    path.write_text("referencia,fecha,concepto,cuenta,importe\n"
                    "BNK-1,31/03/2026,multas,M-2026-000123,500\n")
    assert cli.main(["import-bank", str(path), "--chunk", "100"]) == 0
    assert billing.calls == [(0, 1)] and "applied:                1" in capsys.readouterr().out


class FakeProxy:
    """nameko's ClusterRpcProxy, recording what it was given; billing answers with `billing`."""

    given: dict = {}

    def __init__(self, config, context_data=None, timeout=None):
        FakeProxy.given = {"config": config, "context_data": context_data, "timeout": timeout}
        self.billing = FakeBilling()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_billing_is_called_as_an_admin_over_the_given_broker(monkeypatch):
    import nameko.standalone.rpc

    monkeypatch.setattr(nameko.standalone.rpc, "ClusterRpcProxy", FakeProxy)
    monkeypatch.delenv("EXPEDIENTE_TOKEN", raising=False)
    args = cli.parser().parse_args(["--amqp-uri", "amqp://b//", "statements", "2026-03"])
    assert cli.on_billing(args, lambda billing: 0) == 0
    assert FakeProxy.given["config"] == {"AMQP_URI": "amqp://b//"}
    assert FakeProxy.given["context_data"]["authorization"].startswith("Bearer ey")
    monkeypatch.setenv("EXPEDIENTE_TOKEN", "tok")
    cli.on_billing(cli.parser().parse_args(["statements", "2026-03"]), lambda billing: 0)
    assert FakeProxy.given["context_data"] == {"authorization": "Bearer tok"}


def test_a_remote_error_is_printed_as_its_type_and_value(monkeypatch, capsys):
    import nameko.standalone.rpc

    def refuse(billing):
        raise RemoteError("Forbidden", "this needs one of the roles billing_clerk")

    monkeypatch.setattr(nameko.standalone.rpc, "ClusterRpcProxy", FakeProxy)
    args = cli.parser().parse_args(["--token", "tok", "statements", "2026-03"])
    assert cli.on_billing(args, refuse) == 1
    assert capsys.readouterr().err == "Forbidden: this needs one of the roles billing_clerk\n"


def test_a_broker_out_of_reach_is_named_without_its_password(monkeypatch, capsys):
    import nameko.standalone.rpc

    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "ECONNREFUSED")

    monkeypatch.setattr(nameko.standalone.rpc, "ClusterRpcProxy", refused)
    args = cli.parser().parse_args(["--amqp-uri", "amqp://clerk:s3cret@rabbit:5673//",
                                    "--token", "tok", "statements", "2026-03"])
    assert cli.on_billing(args, lambda billing: 0) == 1
    err = capsys.readouterr().err
    assert err.startswith("cannot reach the broker at rabbit:5673") and "s3cret" not in err
