"""The log follower: applies one application's notification log, in order and once, to a handler
(the outbox relay, every projection), from a position saved with the handler's own writes.

Holes (guarantee 1). On PostgreSQL a notification id is drawn when an insert runs, not when it
commits: with concurrent writers id N+1 can be visible while N is still in flight (and N may yet
roll back, a hole for good). A reader that moved past N would never come back for it. So:

- ids that run on from position+1 without a gap are all committed: they are applied at once;
- at a gap, the follower applies the run before it, then takes a barrier (esrecorder.py): the
  log's advisory lock, exclusively. Every insert holds that lock shared from before it draws its
  ids until it commits or rolls back, so while the barrier holds it no insert is in flight, and
  ids drawn after it are higher than any drawn before. The highest id visible then, M, is final
  and so is every id below it: a gap below M is a rolled-back id, permanent. The follower applies
  everything up to M; ids beyond a gap above M wait for the next round. Writers never wait for
  each other, and for a reader only at a gap, for a round trip. SQLite and the in-memory store
  need no barrier: writers are serialised and a rolled-back id is drawn again.

Once: each batch is applied in the transaction that moves the position with a compare-and-set
(`WHERE position = <where the batch started>`), so a second follower of the same name (a CLI
rebuild beside the service) never applies a batch twice: the loser reads again from the winner.

Poison: a batch that fails for a reason that is not transient is applied again one event per
transaction; an event that fails alone is parked (parked.py), counted and logged, and the position
moves past it. Transient failures (a database or broker away, a deadlock, a publish RabbitMQ did
not confirm) are never parked: the round is retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from shared.chassis import parked, positions
from shared.chassis.esrecorder import Finality, finality_for
from shared.chassis.positions import PositionMoved
from shared.chassis.sqlstore import SqlStore, Tx
from shared.chassis.transient import is_transient

log = logging.getLogger(__name__)

POLL_WHILE_WAITING = 0.03  # seconds between position reads of a replica that does not lead

APPLIED = Counter("expediente_follower_events_total", "Notifications a follower applied",
                  ["follower"])
FAILURES = Counter("expediente_projection_failures_total",
                   "Events a follower could not apply and parked", ["follower"])
ERRORS = Counter("expediente_follower_errors_total", "Rounds that failed and will be retried",
                 ["follower"])
BARRIERS = Counter("expediente_follower_barriers_total",
                   "Barriers taken at a gap in the log (waiting for inserts in flight)",
                   ["follower"])
HOLES = Counter("expediente_follower_permanent_gaps_total",
                "Notification ids passed over as rolled back (final, never stored)", ["follower"])
LAG_EVENTS = Gauge("expediente_follower_lag_events", "Stored notifications not yet followed",
                   ["follower"])
LAG_SECONDS = Gauge("expediente_follower_lag_seconds",
                    "Age of the oldest stored notification not yet followed", ["follower"])


class Handler:
    """What a follower applies the log to."""

    def prepare(self, notifications: Sequence[Any]) -> None:
        """Work done before the follower's transaction opens, for what must not hold it: the
        relay publishes here (on SQLite under eventlet, a write transaction held across network
        I/O would stall every other writer in the process)."""

    def handle(self, tx: Tx, notifications: Sequence[Any]) -> None:
        """Apply notifications (in log order) inside the follower's transaction; raise
        shared.chassis.transient.Transient when trying again later may succeed."""
        raise TypeError(f"{type(self).__name__} must define handle()")

    def retry(self, tx: Tx, notification: Any) -> None:
        """Apply a parked notification again (after a fix); raise if it still fails."""
        self.handle(tx, [notification])

    def describe(self, notification: Any) -> tuple[str, str]:
        """(event type, subject) of a notification, for the parked list."""
        return notification.topic.rsplit(".", 1)[-1], str(notification.originator_id)

    def idle(self) -> None:
        """Called by the run loop when it has nothing to do (keep connections alive)."""

    def close(self) -> None:
        """Release what the handler holds (the follower stopped)."""


class LogFollower:
    """Follows `app`'s notification log from the position saved under `name`."""

    def __init__(self, name: str, app: Any, handler: Handler, *, store: SqlStore | None = None,
                 batch_size: int = 500, poll_interval: float = 1.0, coalesce: float = 0.0,
                 max_backoff: float = 5.0, leading: threading.Event | None = None,
                 finality: Finality | None = None) -> None:
        self.name = name
        self.app = app
        self.handler = handler
        self.store = store or app.sql
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # A few milliseconds of patience after a wake-up gathers a burst of saves into one batch.
        self.coalesce = coalesce
        self.max_backoff = max_backoff
        # Set while this replica leads (shared/chassis/leadership.py); None: always.
        self.leading = leading
        self.finality = finality or finality_for(app.recorder)
        self.lock = threading.RLock()  # one catch-up at a time in this process
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._position: int | None = None  # what we last committed, while we lead
        self._advanced = threading.Event()  # set (and replaced) after each commit
        positions.create(self.store, name)

    # ---- following -------------------------------------------------------------------------

    def catch_up(self, batch_size: int | None = None) -> int:
        """Apply (or park) everything final after the position; return how many."""
        with self.lock:
            done = 0
            while True:
                try:
                    count, more = self._round(batch_size or self.batch_size)
                except PositionMoved:
                    log.info("follower %s: another follower moved the position; reading again",
                             self.name)
                    self._position = None
                    positions.ensure(self.store, self.name)
                    continue
                done += count
                if not more or self.stopping.is_set():
                    return done
                time.sleep(0)  # under eventlet, let other green threads run between batches

    def _round(self, batch_size: int) -> tuple[int, bool]:
        if self._position is None:
            self._position = positions.stored(self.store, self.name)
        position = self._position
        # What was final before the read: a barrier taken meanwhile (by another follower) says
        # nothing of ids this read's snapshot missed because they had not committed yet.
        known_final = self.finality.final
        batch = self._select(position + 1, batch_size)
        if not batch:
            return 0, False
        final = self._final_run(position, batch, known_final)
        if not final:  # a gap right after the position: wait for what is in flight
            BARRIERS.labels(self.name).inc()
            top = self.finality.barrier()
            batch = self._select(position + 1, batch_size, stop=top)
            final = batch
            if not final:
                return 0, False
        skipped = final[-1].id - position - len(final)
        if skipped:
            HOLES.labels(self.name).inc(skipped)
        self._apply(position, final)
        return len(final), len(final) < len(batch) or len(batch) == batch_size

    def _select(self, start: int, limit: int, stop: int | None = None) -> Sequence[Any]:
        return self.app.recorder.select_notifications(start, limit, stop=stop)

    def _final_run(self, position: int, batch: Sequence[Any], final: int) -> Sequence[Any]:
        """The notifications of `batch` that no transaction in flight can precede: those that
        run on from the position without a gap, and any at or below `final`."""
        if not self.finality.needs_barrier:
            return batch
        expected = position + 1
        for index, notification in enumerate(batch):
            if notification.id != expected and notification.id > final:
                return batch[:index]
            expected = notification.id + 1
        return batch

    def _apply(self, position: int, notifications: Sequence[Any]) -> None:
        if len(notifications) > 1:
            try:
                self._commit(position, notifications[-1].id, notifications)
                return
            except Exception as exc:
                if isinstance(exc, PositionMoved) or is_transient(exc):
                    raise
                log.warning("follower %s: a batch of %d failed (%s); applying them one by one",
                            self.name, len(notifications), parked.error_text(exc))
        for notification in notifications:
            try:
                self._commit(position, notification.id, [notification])
            except Exception as exc:
                if isinstance(exc, PositionMoved) or is_transient(exc):
                    raise
                self._park(position, notification, exc)
            position = notification.id

    def _commit(self, old: int, new: int, notifications: Sequence[Any]) -> None:
        self.handler.prepare(notifications)
        with self.store.transaction() as tx:
            positions.move(tx, self.name, old, new)
            self.handler.handle(tx, notifications)
        self._moved(new)
        APPLIED.labels(self.name).inc(len(notifications))

    def _park(self, old: int, notification: Any, exc: Exception) -> None:
        try:
            event_type, subject = self.handler.describe(notification)
        except Exception:  # the event may be the very thing that cannot be read
            event_type, subject = Handler.describe(self.handler, notification)
        error = parked.error_text(exc)
        with self.store.transaction() as tx:
            positions.move(tx, self.name, old, notification.id)
            parked.park(tx, self.name, notification, event_type, subject, error)
        self._moved(notification.id)
        FAILURES.labels(self.name).inc()
        log.error("follower %s: parked notification %d (%s of %s): %s", self.name,
                  notification.id, event_type, subject, error)

    def _moved(self, position: int) -> None:
        self._position = position
        advanced, self._advanced = self._advanced, threading.Event()
        advanced.set()

    def reset(self, tx: Tx) -> None:
        """Start again from the beginning (a rebuild, holding `lock`): position 0, nothing
        parked (what still fails is parked again)."""
        positions.reset(tx, self.name)
        parked.clear_all(tx, self.name)
        self._position = None

    # ---- positions, waiting, lag -------------------------------------------------------------

    def _leads(self) -> bool:
        return self.leading is None or self.leading.is_set()

    def position(self) -> int:
        """The last notification id followed (in memory while this replica leads)."""
        cached = self._position
        if cached is not None and self._leads():
            return cached
        return positions.stored(self.store, self.name)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Return once the follower got to `position` (True) or after `timeout` (False).
        A read that must see a write waits here; it never follows the log itself."""
        deadline = time.monotonic() + timeout
        while True:
            advanced = self._advanced  # before reading the position: no commit goes unseen
            if self.position() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._position is not None and self._leads():
                advanced.wait(remaining)
            else:
                time.sleep(min(remaining, POLL_WHILE_WAITING))

    def lag_events(self) -> int:
        """Notifications stored but not yet followed (also a gauge)."""
        lag = max(0, (self.app.recorder.max_notification_id() or 0) - self.position())
        LAG_EVENTS.labels(self.name).set(lag)
        return lag

    def lag_seconds(self) -> float:
        """Age of the oldest notification not yet followed, 0 when caught up (also a gauge)."""
        lag = 0.0
        pending = self._select(self.position() + 1, 1)
        if pending:
            try:
                stored_at = self.app.mapper.to_domain_event(pending[0]).timestamp
                lag = max(0.0, (datetime.now(UTC) - stored_at).total_seconds())
            except Exception:  # a poison event: it is about to be parked
                log.debug("follower %s: cannot read the next event's time", self.name)
        LAG_SECONDS.labels(self.name).set(lag)
        return lag

    # ---- parked events -----------------------------------------------------------------------

    def failures(self, ids: Sequence[int] | None = None) -> list[parked.Failure]:
        return parked.parked(self.store, self.name, ids)

    def parked_count(self) -> int:
        return parked.count(self.store, self.name)

    def retry_failures(self, ids: Sequence[int] | None = None) -> dict[str, list[int]]:
        """Apply parked events again (all, or those of `ids`): the ones that succeed leave the
        list, the others stay with their new error."""
        cleared, still = [], []
        for failure in self.failures(ids):
            number = failure.notification_id
            try:
                found = self._select(number, 1, stop=number)
                if not found:
                    raise LookupError(f"notification {number} is not in the log")
                self.handler.prepare(found)
                with self.store.transaction() as tx:
                    positions.hold(tx, self.name)  # the live follower's batches wait meanwhile
                    self.handler.retry(tx, found[0])
                    parked.clear(tx, self.name, number)
            except Exception as exc:
                parked.note_error(self.store, self.name, number, parked.error_text(exc))
                still.append(number)
            else:
                log.info("follower %s: parked notification %d applied", self.name, number)
                cleared.append(number)
        return {"cleared": cleared, "parked": still}

    # ---- running it ----------------------------------------------------------------------------

    def run(self) -> None:
        """Follow until stopped: catch up whenever a save wakes us (or every poll interval),
        pausing while another replica leads. A failed round is logged and retried with backoff,
        so the loop never dies silently. Fit for a green thread."""
        backoff = 0.1
        while not self.stopping.is_set():
            if not self._leads():
                self._position = None  # the leader moves it meanwhile
                self.leading.wait(self.poll_interval)  # type: ignore[union-attr]
                continue
            self.wake.clear()  # before the round: a save during it wakes the next one
            try:
                self.catch_up()
            except Exception as exc:
                ERRORS.labels(self.name).inc()
                if is_transient(exc):
                    log.warning("follower %s: %s; retrying in %.1f s", self.name,
                                parked.error_text(exc), backoff)
                else:
                    log.exception("follower %s: round failed; retrying in %.1f s", self.name,
                                  backoff)
                self._position = None
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.1
            if self.wake.wait(self.poll_interval) and self.coalesce:
                # Under load saves arrive every few milliseconds: gather them into one batch.
                self.stopping.wait(self.coalesce)
            self.handler.idle()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop: the round in progress ends first (its batch commits), so the stores
        can be closed right after."""
        self.stopping.set()
        self.wake.set()
        if self.lock.acquire(timeout=timeout):
            self.lock.release()
        self.handler.close()

