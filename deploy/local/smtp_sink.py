"""A local SMTP server for development and tests: it keeps every email it is given as a file,
delivers none, and can be told to answer the first messages with a temporary failure.

    python deploy/local/smtp_sink.py --host 127.0.0.1 --port 1025 --maildir var/mail

Each message is stored as <maildir>/<n>-<hash of its Message-ID>.eml and announced by one line on
standard output. `--fail-first N` answers "451 4.3.0 try again later" to the first N messages, and
`--refuse DOMAIN` answers "550 5.1.1" to any recipient of that domain, so that tests can see the
email channel's "retry" and "rejected" outcomes against a real server. It runs as its own process
(aiosmtpd is asyncio; the services run on eventlet) and no service imports it."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import sys
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class Sink:
    """The aiosmtpd handler: refuses what it was told to, stores the rest."""

    def __init__(self, folder: Path, fail_first: int, refuse: list[str]) -> None:
        self.folder, self.failures_left = folder, fail_first
        self.refuse = {domain.lower() for domain in refuse}
        # Numbers go on from what the folder holds, so a restarted sink never overwrites a file.
        self.count = len(list(folder.glob("*.eml")))

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.rpartition("@")[2].lower() in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.failures_left > 0:
            self.failures_left -= 1
            print(f"451 to a message for {', '.join(envelope.rcpt_tos)}", flush=True)
            return "451 4.3.0 try again later"
        content = envelope.original_content or b""
        headers = BytesHeaderParser().parsebytes(content)
        message_id = str(headers.get("Message-ID", ""))
        self.count += 1
        name = f"{self.count}-{hashlib.sha256(message_id.encode()).hexdigest()[:16]}.eml"
        partial = self.folder / f".{name}.part"
        partial.write_bytes(content)
        partial.rename(self.folder / name)  # whole or absent: a reader never sees half a file
        print(f"{name} from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}: "
              f"{headers.get('Subject', '')}", flush=True)
        return f"250 2.0.0 Ok: queued as {self.count}"


async def serve(host: str, port: int, sink: Sink) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="smtp-sink.local"), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"SMTP sink on {host}:{port}, storing in {sink.folder}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=Path("var/mail"))
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer 451 to the first N messages")
    parser.add_argument("--refuse", action="append", default=[], metavar="DOMAIN",
                        help="answer 550 to recipients of this domain (repeatable)")
    args: Any = parser.parse_args(argv)
    args.maildir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, Sink(args.maildir, args.fail_first, args.refuse)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
