"""The treasury's long jobs against the running billing service: the bank's reconciliation file,
imported with `expediente-billing import-bank`, pays each row once — imported again (even
re-exported with other line endings) it pays nothing, and an import stopped halfway resumes
where it stopped; the month's statements go out by email once per account and period, however
many times the batch runs, with its progress reported as it goes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from nameko.exceptions import RemoteError

from services.billing.bankfile import read
from tests.billingstack import CITY, NEXT_YEAR, BillingStack, pdf_text
from tests.support import ROOT, wait_for

pytestmark = pytest.mark.e2e

ACCOUNTS = [f"22-002-{n:04d}-001" for n in range(1, 31)]
CHECK = "5120"
LEVY = Decimal("1360.00")  # a cadastral value of 850,000.00 at 1.6 per mil
TODAY = datetime.now(CITY).date()
HEADER = "referencia,fecha,concepto,cuenta,importe"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = BillingStack(tmp_path_factory.mktemp("billing-batches")).start()
    with running.billing_rpc("billing_clerk", area="predial") as billing:
        for key in ACCOUNTS:
            billing.open_account({"kind": "predial", "key": key, "check": CHECK,
                                  "holder": f"Titular {key}", "description": "Calle 5 de Mayo",
                                  "cadastral_value": "850000.00"})
            billing.assess_predial(key, NEXT_YEAR)
    yield running
    running.stop()


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    """`expediente-billing <args>` as an operator runs it, against the stack's billing."""
    return subprocess.run([sys.executable, "-m", "services.billing.cli", "--amqp-uri",
                           stack.amqp_uri, "--timeout", "60", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def balances(stack) -> dict[str, str]:
    return {key: stack.balance("predial", key, CHECK) for key in ACCOUNTS}


def bank_rows(prefix: str, count: int, amount: str) -> list[str]:
    """`count` good rows paying `amount` each, round the accounts, in both date forms."""
    return [f"{prefix}-{n:05d},"
            f"{TODAY.isoformat() if n % 2 else TODAY.strftime('%d/%m/%Y')},"
            f"{'predial' if n % 3 else 'PREDIAL'},{ACCOUNTS[n % len(ACCOUNTS)]},{amount}"
            for n in range(count)]


def summary(output: str) -> dict[str, int]:
    """The CLI's totals: {"applied": 297, "already applied before": 0, "rejected": 3}."""
    found = re.findall(r"^\s+(applied|already applied before|rejected):\s+([\d,]+)$", output,
                       re.MULTILINE)
    return {name: int(number.replace(",", "")) for name, number in found}


def test_a_bank_file_pays_each_row_once_however_often_it_is_imported(stack, tmp_path):
    tag = uuid.uuid4().hex[:6].upper()
    rows = bank_rows(f"BNK-{tag}", 297, "100.00")
    bad = {50: f"BNK-{tag}-X1,31/02/{TODAY.year},predial,{ACCOUNTS[0]},100.00",  # no such day
           150: f"BNK-{tag}-X2,{TODAY.isoformat()},predial,22-002-9999-001,100.00",  # unknown
           250: f"BNK-{tag}-X3,{TODAY.isoformat()},predial,{ACCOUNTS[1]},12,50"}  # six cells
    for at, line in sorted(bad.items()):
        rows.insert(at, line)
    assert len(rows) == 300
    path = tmp_path / f"banorte-{TODAY.isoformat()}.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    before = stack.billing_events()

    first = cli(stack, "import-bank", str(path), "--chunk", "100")
    assert first.returncode == 2, first.stderr  # 2: some rows were rejected
    assert summary(first.stdout) == {"applied": 297, "already applied before": 0,
                                     "rejected": 3}, first.stdout
    for at in bad:  # each rejected row named by its line (the header is line 1)
        assert re.search(rf"\b{at + 2}: ", first.stdout), first.stdout
    assert "not a day of the calendar" in first.stdout
    assert "no predial account 22-002-9999-001" in first.stdout
    assert "expected 5 columns" in first.stdout
    paid = {key: sum(1 for n in range(297) if ACCOUNTS[n % 30] == key) for key in ACCOUNTS}
    expected = {key: str(LEVY - 100 * paid[key]) for key in ACCOUNTS}
    assert balances(stack) == expected
    received = stack.billing_events("PaymentReceived")
    assert len(received) == len([e for e in before if e[2].endswith("PaymentReceived")]) + 297
    rejects = stack.query("billing", "SELECT row_number FROM billing_import_rejects "
                                     "WHERE file_id = ? ORDER BY row_number",
                          (read(path).file_id,))
    assert rejects == [(at + 2,) for at in sorted(bad)]

    # The same file again: billing knows it is done, and says so.
    again = cli(stack, "import-bank", str(path))
    assert "was imported already" in again.stdout, (again.stdout, again.stderr)
    assert summary(again.stdout)["applied"] == 297
    # The same payments, re-exported (other line endings: another file to billing).
    exported = tmp_path / "banorte-reexportado.csv"
    exported.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert read(exported).file_id != read(path).file_id
    duplicate = cli(stack, "import-bank", str(exported), "--chunk", "64")
    assert summary(duplicate.stdout) == {"applied": 0, "already applied before": 297,
                                         "rejected": 3}, duplicate.stdout
    assert stack.billing_events("PaymentReceived") == received
    assert balances(stack) == expected


def test_an_import_stopped_halfway_resumes_and_applies_each_row_once(stack, tmp_path):
    path = tmp_path / "banorte-segundo-corte.csv"
    rows = bank_rows(f"BNK2-{uuid.uuid4().hex[:6].upper()}", 120, "50.00")
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    bank_file = read(path)
    start = balances(stack)
    received = len(stack.billing_events("PaymentReceived"))

    with stack.billing_rpc("system") as billing:
        # The import ran two chunks, then the clerk's laptop went to sleep.
        for first in (0, 25):
            answer = billing.import_bank_rows(bank_file.file_id, bank_file.filename, 120, first,
                                              bank_file.rows[first:first + 25])
            assert answer["applied"] == 25 and answer["rows_done"] == first + 25
        # The second chunk's answer was lost on the way: sent again, it pays nothing again.
        resent = billing.import_bank_rows(bank_file.file_id, bank_file.filename, 120, 25,
                                          bank_file.rows[25:50])
        assert (resent["applied"], resent["duplicates"]) == (0, 25)
        with pytest.raises(RemoteError, match="got to row 50: resume there"):  # no gap
            billing.import_bank_rows(bank_file.file_id, bank_file.filename, 120, 75,
                                     bank_file.rows[75:100])
        status = billing.bank_import_status(bank_file.file_id)
    assert (status["rows_done"], status["applied"], status["finished"]) == (50, 50, False)

    resumed = cli(stack, "import-bank", str(path), "--chunk", "30")
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming banorte-segundo-corte.csv at row 51\b", resumed.stderr), \
        resumed.stderr
    assert summary(resumed.stdout) == {"applied": 120, "already applied before": 0,
                                       "rejected": 0}, resumed.stdout
    assert len(stack.billing_events("PaymentReceived")) == received + 120
    paid = {key: sum(1 for n in range(120) if ACCOUNTS[n % 30] == key) for key in ACCOUNTS}
    assert balances(stack) == {key: str(Decimal(start[key]) - 50 * paid[key])
                               for key in ACCOUNTS}


def documents_sent(stack) -> list[dict]:
    """Notifications' deliveries of documents, once none is still to be sent."""
    def settled():
        rows = stack.deliveries(purpose="document")
        return rows if rows and all(r["status"] == "sent" for r in rows) else None
    found = wait_for(settled, timeout=60, message="the documents sent")
    assert isinstance(found, list)
    return found


def test_the_months_statements_go_out_once_per_account_and_period(stack):
    contacts = {key: f"predial-{key}@example.com" for key in ACCOUNTS[:5]}
    with stack.billing_rpc("billing_clerk", area="predial") as billing:
        for key, address in contacts.items():
            billing.set_statement_contact("predial", key, {"channel": "email",
                                                           "email": address})
    period = f"{TODAY:%Y-%m}"
    progress = []
    with stack.billing_rpc("system") as billing:
        for cursor in ("predial", "14-001-0123-045"):  # not kind:key: refused, nothing issued
            with pytest.raises(RemoteError, match="ValidationError"):
                billing.statement_batch(period, None, cursor, 7)
        cursor = None
        while True:
            answer = billing.statement_batch(period, None, cursor, 7)
            progress.append((answer["done"], answer["total"]))
            if answer["next"] is None:
                break
            cursor = answer["next"]
        assert answer["failed"] == []
    total = len(ACCOUNTS)
    assert progress == [(min(n, total), total) for n in range(7, total + 7, 7)]
    assert answer["sent"] == len(contacts) and answer["skipped"] == total - len(contacts)

    sent = documents_sent(stack)
    assert len(sent) == len(contacts)
    mails = {m["To"]: m for m in stack.emails()}
    assert set(mails) == set(contacts.values())
    [attachment] = list(mails[contacts[ACCOUNTS[0]]].iter_attachments())
    text = pdf_text(attachment.get_content())
    balance = stack.balance("predial", ACCOUNTS[0], CHECK)
    assert f"{Decimal(balance):,}" in text and ACCOUNTS[0] in text

    # Run again: the same batch (it is finished), and the predial accounts on their own.
    same = cli(stack, "statements", period)
    assert same.returncode == 0, same.stderr
    assert f"{total:,}/{total:,} accounts" in same.stderr
    predial = cli(stack, "statements", period, "--kind", "predial")
    assert predial.returncode == 0, predial.stderr
    assert re.search(r"^\s+sent:\s+5$", predial.stdout, re.MULTILINE), predial.stdout
    assert len(documents_sent(stack)) == len(contacts)  # notifications sent none of them again
    assert sorted(m["To"] for m in stack.emails()) == sorted(contacts.values())

    # Last month's statements, sent late this month: another statement, another email each.
    last = (TODAY.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    late = cli(stack, "statements", last)
    assert late.returncode == 0, late.stderr
    assert len(documents_sent(stack)) == 2 * len(contacts)
    assert sorted(m["To"] for m in stack.emails()) == sorted(2 * list(contacts.values()))
    assert len(stack.billing_events("StatementIssued")) == 2 * total


def test_the_cli_refuses_a_file_that_is_not_the_banks(stack, tmp_path):
    path = Path(tmp_path) / "otra-cosa.csv"
    path.write_text("fecha,monto\n2026-12-01,100.00\n", encoding="utf-8")
    refused = cli(stack, "import-bank", str(path))
    assert refused.returncode == 1 and "does not start with the header" in refused.stderr
