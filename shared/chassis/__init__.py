"""What every service runs on: HTTP, health and metrics, the log follower behind the outbox relay
and every projection, the eventsourced runtime, RPC, auth, consumers, dead letters, photos.

psycopg's compiled wait function blocks eventlet's hub: while one query waits, every green thread
in the process freezes. `wait_select` goes through `select`, which eventlet patches, so queries
from different workers overlap. Set here, so it holds before anything of the chassis loads psycopg.
"""

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
