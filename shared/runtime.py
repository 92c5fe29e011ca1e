"""Process-wide settings every service needs before its libraries load.

psycopg's compiled wait function blocks eventlet's hub: while one query waits, every green thread in
the process freezes. `wait_select` goes through `select`, which eventlet patches, so queries from
different workers overlap. Import this module before anything imports psycopg.
"""

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
