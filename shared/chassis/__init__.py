"""What every service runs on: HTTP, health and metrics, the log follower behind the outbox relay
and every projection, the eventsourced runtime, RPC, auth, consumers, dead letters, photos.

psycopg's compiled wait function blocks eventlet's hub: while one query waits, every green thread
in the process freezes. `wait_select` goes through `select`, which eventlet patches, so queries
from different workers overlap. Set here, so it holds before anything of the chassis loads psycopg;
then the chassis' own green wait replaces it (greenwait.py: the kernel is asked first, and the hub
only when the socket really has to wait).
"""

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

from shared.chassis import greenwait  # noqa: E402

greenwait.install()
