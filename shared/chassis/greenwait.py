"""psycopg's wait function for an eventlet process: green, and a trip through the hub only when
the connection really has to wait.

psycopg drives a query as a generator that says what it waits for (to read, to write, or either)
and is told what is ready. `wait_select` (PSYCOPG_WAIT_FUNC) asks eventlet's green `select` every
time, and every ask is a trip through the hub (listeners added and removed, a timer, a switch)
even when the socket is ready already, as it nearly always is for writing: every query asks at
least once to write and once to read. Here the kernel is asked first, without waiting (the unpatched
`poll`, timeout 0); only when nothing is ready does the green thread give way to the hub until
the socket is, so other green threads run while a query is on the server, as before (a test
proves two slow queries overlap).

In a process that eventlet has not patched, psycopg's own `wait_select` runs, unchanged.
"""

from __future__ import annotations

import contextlib
import sys
from time import monotonic
from typing import Any

from psycopg import errors, waiting
from psycopg.waiting import READY_R, READY_W, WAIT_R, WAIT_RW, WAIT_W

_kernel: Any = None  # the unpatched `select` module, once eventlet is there: poll(0) never waits
_trampoline: Any = None  # eventlet.hubs.trampoline: wait in the hub for one socket


def _patched() -> bool:
    """True once eventlet has made `select` green (a process that never imports eventlet, like
    a command-line tool, keeps psycopg's own wait)."""
    global _kernel, _trampoline
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is None or not patcher.is_monkey_patched("select"):
        return False
    if _kernel is None:
        from eventlet.hubs import trampoline

        _kernel, _trampoline = patcher.original("select"), trampoline
    return True


class _Quiet(Exception):
    """The socket stayed quiet until the deadline (trampoline's timeout)."""


def ready_now(poller: Any, fileno: int, wait: int) -> int:
    """What of `wait` the socket is ready for right now (READY_R / READY_W bits; 0: nothing).
    A closed or broken socket counts as ready for whatever was asked: libpq then reads or writes
    and reports the error (were it "nothing", the wait would go round for ever)."""
    asked = (READY_R if wait & WAIT_R else 0) | (READY_W if wait & WAIT_W else 0)
    broken = _kernel.POLLERR | _kernel.POLLHUP | _kernel.POLLNVAL
    poller.register(fileno, (_kernel.POLLIN if asked & READY_R else 0)
                    | (_kernel.POLLOUT if asked & READY_W else 0))
    ready = 0
    for _fd, events in poller.poll(0):
        if events & broken:
            return asked
        if events & _kernel.POLLIN:
            ready |= READY_R
        if events & _kernel.POLLOUT:
            ready |= READY_W
    return ready & asked


def _give_way(fileno: int, wait: int, timeout: float | None) -> None:
    """Let the hub run other green threads until the socket is ready for `wait` (or `timeout`)."""
    if wait == WAIT_RW:  # waiting to write a pipeline while its answers may come back: either
        import select  # eventlet's green select, the rare case (a full send buffer)

        select.select((fileno,), (fileno,), (fileno,), timeout)
        return
    with contextlib.suppress(_Quiet):
        _trampoline(fileno, read=wait == WAIT_R, write=wait == WAIT_W, timeout=timeout,
                    timeout_exc=_Quiet)


def wait_green(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None
               ) -> Any:
    """psycopg's WaitFunc: run `gen` to its end on `fileno`; raises psycopg's `_WaitTimeout`
    after `timeout` seconds (None: no limit; `interval` only serves a blocking wait, which
    checks for Ctrl-C that often: a green one is woken by the hub)."""
    if not _patched():
        return waiting.wait_select(gen, fileno, interval, timeout)
    deadline = None if timeout is None else monotonic() + timeout
    poller = _kernel.poll()
    try:
        wait = next(gen)
        while True:
            ready = ready_now(poller, fileno, wait)
            if not ready:
                _give_way(fileno, wait, None if deadline is None
                          else max(0.0, deadline - monotonic()))
                ready = ready_now(poller, fileno, wait)
            if ready or deadline is not None:  # a generator told "nothing" only at a deadline
                wait = gen.send(ready)
            if deadline is not None and monotonic() >= deadline:
                raise errors._WaitTimeout("wait timeout expired")
    except OSError as exc:
        raise errors.OperationalError("connection socket closed") from exc
    except StopIteration as done:
        return done.value


def install() -> None:
    """psycopg's connections wait with `wait_green` from now on (they look `waiting.wait` up at
    each wait)."""
    waiting.wait = wait_green
