"""`expediente-billing`: the bank's reconciliation file and the monthly statements, from a terminal.

    expediente-billing import-bank pagos-banorte-2026-03-31.csv [--chunk 250]
    expediente-billing statements 2026-03 [--kind agua]

Both call the billing service over RabbitMQ (--amqp-uri, else AMQP_URI) as an admin: with
--token, else EXPEDIENTE_TOKEN, else a token minted with the local key. Both may be stopped with
Ctrl-C and run again: an import goes on from the first row the service has not recorded (a
payment is applied once per reference, so a row sent twice pays once), and the statements go on
from where they stopped. The file's format is in services/billing/bankfile.py.
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit

# Before nameko loads: eventlet's notice, and dnspython's DSA (both not ours; a clerk reads them
# on every run otherwise).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", message="DSA is deprecated")

from shared.chassis import auth  # noqa: E402

from .bankfile import BankFile, BankFileError, chunks, read  # noqa: E402
from .domainmodel import KINDS  # noqa: E402

PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
MAX_CHUNK = 1000  # the most rows billing takes in one call
MAX_LISTED = 50  # rejected rows or failed statements listed: a screenful, not the whole file
INTERRUPTED = 130  # the shell's status for Ctrl-C
Clock = Callable[[], float]


class Stalled(Exception):
    """The service answered without moving on: asking again would loop for ever."""


# ---- the progress line --------------------------------------------------------------------------


def render(done: int, total: int, rate: float | None, what: str = "rows", width: int = 20) -> str:
    """`[######..............] 1,500/5,000 rows  30.0 %  250 rows/s  ETA 14s`."""
    # Floored: 199,999 of 200,000 is 99.9 %, never a 100 % that is not finished.
    tenths = math.floor(done * 1000 / total) if total else 1000
    filled = width * tenths // 1000
    speed = f"{rate:,.0f}" if rate else "--"
    eta = duration((total - done) / rate) if rate else "--"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {what}  "
            f"{tenths / 10:.1f} %  {speed} {what}/s  ETA {eta}")


def duration(seconds: float) -> str:
    """`45s`, `3m 05s`, `1h 02m`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class Progress:
    """A progress line on `stream`: redrawn in place on a terminal; in a log (not a terminal),
    a line each time another tenth is done. The rate counts this run's work only; with
    `done=None` it starts counting at the first update (the work before is not known)."""

    def __init__(self, total: int, stream: TextIO, what: str = "rows", done: int | None = 0,
                 clock: Clock = time.monotonic) -> None:
        self.total, self.stream, self.what, self.clock = total, stream, what, clock
        self.done = done or 0
        self.since = None if done is None else (done, clock())
        self.terminal = stream.isatty()
        self.drawn = 0  # length of the line on screen: a shorter one must cover it
        self.tenth = math.floor(self.done * 10 / total) if total else 0

    def update(self, done: int, total: int | None = None) -> None:
        self.done, self.total = done, self.total if total is None else total
        if self.since is None:
            self.since = (done, self.clock())
        line = render(done, self.total, self.rate(), self.what)
        if self.terminal:
            self.stream.write("\r" + line.ljust(self.drawn))
            self.drawn = len(line)
        else:
            tenth = math.floor(done * 10 / self.total) if self.total else 10
            if tenth > self.tenth:
                self.stream.write(line + "\n")
                self.tenth = tenth
        self.stream.flush()

    def rate(self) -> float | None:
        if self.since is None:
            return None
        moved, elapsed = self.done - self.since[0], self.clock() - self.since[1]
        return moved / elapsed if moved > 0 and elapsed > 0 else None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.drawn:  # what is printed next starts on a line of its own
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0


# ---- import-bank --------------------------------------------------------------------------------


def import_bank(rpc: Any, bank_file: BankFile, chunk: int, out: TextIO, err: TextIO,
                clock: Clock = time.monotonic) -> int:
    """Send the rows the service has not recorded yet, `chunk` at a time, then the summary.

    `rpc` is billing's proxy (bank_import_status, import_bank_rows). Status 0: every row is
    applied or was before; 2: some row was rejected; 1: the service's count makes no sense."""
    file_id, name, total, rows = (bank_file.file_id, bank_file.filename,
                                  bank_file.rows_total, bank_file.rows)
    status = rpc.bank_import_status(file_id)
    if status.get("finished"):
        print(f"{name} was imported already (file {file_id[:12]}):", file=out)
        return _bank_summary(status, [], out)
    done = status["rows_done"]
    if done > total:
        print(f"billing has {done:,} rows of {name} recorded, but the file has {total:,}: "
              "is this the same file?", file=err)
        return 1
    if done:
        print(f"resuming {name} at {_row(rows, done)} of {total:,}", file=err)
    rejected: list[dict[str, Any]] = []
    try:
        with Progress(total, err, "rows", done=done, clock=clock) as progress:
            while done < total:
                first, part = next(chunks(rows, done, chunk))
                answer = rpc.import_bank_rows(file_id, name, total, first, part)
                rejected += answer["rejected"]
                if answer["rows_done"] <= done:
                    raise Stalled(f"billing recorded no row past row {done:,}")
                # The service's count, not ours: another import of this file may have run ahead.
                done = min(answer["rows_done"], total)
                progress.update(done)
    except KeyboardInterrupt:
        print(f"stopped: run the same command again to resume from {_row(rows, done)}",
              file=err)
        return INTERRUPTED
    except Stalled as stalled:
        print(f"{stalled}; stopped so as not to send the same rows for ever", file=err)
        return 1
    except BaseException:
        print(f"stopped after {done:,} of {total:,} rows: once the cause is fixed, run the same "
              f"command again to resume from {_row(rows, done)}", file=err)
        raise
    return _bank_summary(rpc.bank_import_status(file_id), rejected, out)


def _row(rows: list[dict[str, Any]], index: int) -> str:
    """`row 501 (line 503)`: the payment's count, and its line in the file (which is how a
    rejected row is named, as the service echoes each row's line)."""
    line = f" (line {rows[index]['row']})" if index < len(rows) else ""
    return f"row {index + 1:,}{line}"


def _bank_summary(status: dict[str, Any], rejected: list[dict[str, Any]], out: TextIO) -> int:
    """The file's totals (every run of it); the reasons of the rows rejected in this run."""
    print(f"{status.get('filename', '')}: {status.get('rows_total', 0):,} rows", file=out)
    print(f"  applied:                {status.get('applied', 0):,}", file=out)
    print(f"  already applied before: {status.get('duplicates', 0):,}", file=out)
    print(f"  rejected:               {status.get('rejected', 0):,}", file=out)
    _listed([f"line {item.get('row')}: {item.get('error')}" for item in rejected], out)
    earlier = status.get("rejected", 0) - len(rejected)
    if earlier > 0:
        print(f"    ({earlier:,} rejected in an earlier run: their reasons were listed then)",
              file=out)
    return 2 if status.get("rejected", 0) else 0


def _listed(lines: list[str], out: TextIO) -> None:
    for line in lines[:MAX_LISTED]:
        print(f"    {line}", file=out)
    if len(lines) > MAX_LISTED:
        print(f"    and {len(lines) - MAX_LISTED:,} more", file=out)


# ---- statements ---------------------------------------------------------------------------------


def statements(rpc: Any, period: str, kind: str | None, out: TextIO, err: TextIO,
               clock: Clock = time.monotonic) -> int:
    """Run the period's statement batch a slice per call until the service says there is no
    next one. Billing keeps the batch's cursor and counts, so a first call (no cursor) goes on
    where an earlier run stopped. Status 0: every statement sent or skipped; 2: some failed."""
    cursor: Any = None
    answer: dict[str, Any] = {"done": 0, "total": 0, "sent": 0, "skipped": 0}
    failed: list[Any] = []  # the answers list only their own slice's failures
    try:
        # The first answer's count may include an earlier run's: the speed starts from it.
        with Progress(0, err, "accounts", done=None, clock=clock) as progress:
            while True:
                answer = rpc.statement_batch(period, kind, cursor)
                failed += answer["failed"]
                progress.update(answer["done"], answer["total"])
                if answer["next"] is None:
                    break
                if answer["next"] == cursor:
                    raise Stalled(f"billing's batch did not move past {cursor}")
                cursor = answer["next"]
    except KeyboardInterrupt:
        print(f"stopped after {answer['done']:,} of {answer['total']:,} accounts: run the same "
              "command again to go on from there", file=err)
        return INTERRUPTED
    except Stalled as stalled:
        print(f"{stalled}; stopped so as not to ask for the same slice for ever", file=err)
        return 1
    which = f" ({kind})" if kind else ""
    print(f"statements {period}{which}: {answer['total']:,} accounts", file=out)
    print(f"  sent:    {answer['sent']:,}", file=out)
    print(f"  skipped: {answer['skipped']:,}", file=out)
    print(f"  failed:  {len(failed):,}", file=out)
    _listed([_failure(item) for item in failed], out)
    return 2 if failed else 0


def _failure(item: Any) -> str:
    """`agua:AG-0001: no address` from {"account": "agua:AG-0001", "error": "no address"}."""
    if not isinstance(item, dict):
        return str(item)
    said = " ".join(str(value) for name, value in item.items() if name != "error")
    return f"{said}: {item['error']}" if "error" in item else said


# ---- the command line ---------------------------------------------------------------------------


def on_billing(args: argparse.Namespace, work: Callable[[Any], int]) -> int:
    """`work(billing's RPC proxy)`; a RemoteError is printed as `exc_type: value`, status 1."""
    import eventlet

    eventlet.monkey_patch()
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    token = args.token or auth.mint_token(args.sub, ["admin"])
    try:
        with ClusterRpcProxy({"AMQP_URI": args.amqp_uri}, timeout=args.timeout,
                             context_data={"authorization": f"Bearer {token}"}) as rpc:
            return work(rpc.billing)
    except RemoteError as exc:
        print(f"{exc.exc_type}: {exc.value}", file=sys.stderr)
    except RpcTimeout:
        print(f"billing did not answer within {args.timeout:g} s", file=sys.stderr)
    except UnknownService:
        print(f"billing is not running on the broker at {_broker(args.amqp_uri)}",
              file=sys.stderr)
    except OSError as error:
        print(f"cannot reach the broker at {_broker(args.amqp_uri)}: {error}", file=sys.stderr)
    return 1


def _broker(uri: str) -> str:
    """host:port of an AMQP URI: its password stays out of the message."""
    try:
        parts = urlsplit(uri)
        return f"{parts.hostname}:{parts.port or 5672}"
    except ValueError:
        return "AMQP_URI"


def run_import(args: argparse.Namespace) -> int:
    try:
        bank_file = read(args.file)
    except BankFileError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    if not bank_file.rows:
        print(f"{bank_file.filename} has no payment rows: nothing to import", file=sys.stderr)
        return 0
    return on_billing(args, lambda billing: import_bank(
        billing, bank_file, args.chunk, sys.stdout, sys.stderr))


def run_statements(args: argparse.Namespace) -> int:
    return on_billing(args, lambda billing: statements(
        billing, args.period, args.kind, sys.stdout, sys.stderr))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expediente-billing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amqp-uri", default=os.environ.get(
        "AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//"))
    parser.add_argument("--token", default=os.environ.get("EXPEDIENTE_TOKEN"),
                        help="bearer token (default: EXPEDIENTE_TOKEN, else one minted)")
    parser.add_argument("--sub", default=_login(), help="who a minted token speaks for")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for each answer of the service")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import-bank", help="apply the payments of the bank's CSV file")
    p.add_argument("file")
    p.add_argument("--chunk", type=_chunk, default=250,
                   help=f"rows per call, 1 to {MAX_CHUNK:,} (250)")
    p.set_defaults(func=run_import)
    p = sub.add_parser("statements", help="send the statements of a month (YYYY-MM)")
    p.add_argument("period", type=_period)
    p.add_argument("--kind", choices=KINDS, help="only this concept (default: all)")
    p.set_defaults(func=run_statements)
    return parser


def _period(text: str) -> str:
    if not PERIOD.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a period is YYYY-MM (e.g. 2026-03), not {text!r}")
    return text


def _chunk(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_CHUNK:,}, not {text!r}")
    return int(text)


def _login() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without USER)
        return "cli"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
