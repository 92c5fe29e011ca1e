"""The log follower on a log whose ids become visible out of order (as PostgreSQL's do with
concurrent writers): it never passes over an id a transaction in flight may still commit, parks
what it cannot apply and moves on, and waits only when it sees a gap."""

from __future__ import annotations

import threading
import uuid

import pytest
from eventsourcing.persistence import Notification

from shared.chassis.esrecorder import Finality
from shared.chassis.follower import Handler, LogFollower
from shared.chassis.sqlstore import SqliteStore
from shared.chassis.transient import Transient

TOPIC = "services.tracking.domainmodel:Report.Opened"


class Log:
    """An event log with inserts in flight: `visible` has committed, `in_flight` has not."""

    def __init__(self) -> None:
        self.visible: dict[int, Notification] = {}
        self.in_flight: set[int] = set()
        self.after_read = None  # what happens right after a read took its snapshot

    def draw(self, *ids: int) -> None:
        self.in_flight.update(ids)

    def commit(self, *ids: int) -> None:
        for number in ids:
            self.in_flight.discard(number)
            self.visible[number] = Notification(
                originator_id=uuid.uuid4(), originator_version=1, topic=TOPIC,
                state=b"{}", id=number)

    def roll_back(self, *ids: int) -> None:
        self.in_flight.difference_update(ids)

    def select_notifications(self, start, limit, stop=None):
        found = sorted(n for n in self.visible if n >= start and (stop is None or n <= stop))
        snapshot = [self.visible[n] for n in found[:limit]]
        if self.after_read is not None:
            self.after_read()
        return snapshot

    def max_notification_id(self):
        return max(self.visible, default=None)


class Barrier(Finality):
    """The advisory-lock barrier, simulated: it waits for every insert in flight to end
    (here: `settle` commits or rolls them back), then reads the highest id."""

    needs_barrier = True

    def __init__(self, log: Log, settle=None) -> None:
        super().__init__()
        self.log, self.settle, self.taken = log, settle, 0

    def _barrier(self) -> int:
        self.taken += 1
        if self.settle:
            self.settle()
        return self.log.max_notification_id() or 0


class App:
    name = "ciudad"

    def __init__(self, log: Log) -> None:
        self.recorder = log
        self.sql = SqliteStore(":memory:")


class Recorder(Handler):
    def __init__(self, poison: set[int] = frozenset()) -> None:
        self.applied: list[int] = []
        self.poison = set(poison)
        self.transient_failures = 0

    def handle(self, tx, notifications):
        for n in notifications:
            if n.id in self.poison:
                raise ValueError(f"cannot apply {n.id}")
        if self.transient_failures:
            self.transient_failures -= 1
            raise Transient("the broker is away")
        self.applied.extend(n.id for n in notifications)


@pytest.fixture
def log():
    return Log()


def follower_of(log, handler, settle=None, **options):
    barrier = Barrier(log, settle)
    return LogFollower("vistas", App(log), handler, finality=barrier, **options), barrier


def test_ids_that_run_on_from_the_position_are_applied_without_a_barrier(log):
    log.commit(1, 2, 3)
    handler = Recorder()
    follower, barrier = follower_of(log, handler)
    assert follower.catch_up() == 3
    assert handler.applied == [1, 2, 3] and barrier.taken == 0 and follower.position() == 3


def test_an_id_still_in_flight_is_waited_for_never_passed_over(log):
    log.draw(1, 2, 3, 4)
    log.commit(1, 2, 4)  # 3 is still in flight: 4 is visible first
    handler = Recorder()
    follower, barrier = follower_of(log, handler, settle=lambda: log.commit(3))

    follower.catch_up()

    assert handler.applied == [1, 2, 3, 4]
    assert barrier.taken == 1 and follower.position() == 4


def test_a_rolled_back_id_is_passed_over_once_the_barrier_shows_it_is_final(log):
    log.draw(1, 2, 3)
    log.commit(1, 3)
    handler = Recorder()
    follower, barrier = follower_of(log, handler, settle=lambda: log.roll_back(2))

    follower.catch_up()
    log.commit(4)
    follower.catch_up()

    assert handler.applied == [1, 3, 4]
    assert barrier.taken == 1  # 2 is known final from then on: no second barrier


def test_a_barrier_taken_while_a_read_runs_says_nothing_of_what_that_read_missed(log):
    log.draw(1, 2, 3)
    log.commit(1, 3)
    handler = Recorder()
    follower, barrier = follower_of(log, handler, settle=lambda: log.commit(2))

    def another_followers_barrier():  # 2 commits after our snapshot; 3 is final from now on
        log.after_read = None
        barrier.barrier()

    log.after_read = another_followers_barrier
    follower.catch_up()
    assert handler.applied == [1, 2, 3]


def test_ids_beyond_a_gap_above_the_barrier_wait_for_the_next_round(log):
    log.draw(1, 2)
    log.commit(2)
    handler = Recorder()
    barriers = iter([
        lambda: log.commit(1),  # the first barrier: 1 ends; M = 2
        lambda: log.commit(3),  # the second waits for 3, drawn after the first
    ])
    follower, barrier = follower_of(log, handler, settle=lambda: next(barriers)())
    real = barrier._barrier

    def then_more_writes():
        top = real()
        if barrier.taken == 1:  # right after the first barrier: 3 drawn, 4 drawn and committed
            log.draw(3, 4)
            log.commit(4)
        return top

    barrier._barrier = then_more_writes
    follower.catch_up()
    assert handler.applied[:2] == [1, 2]
    follower.catch_up()
    assert handler.applied == [1, 2, 3, 4] and barrier.taken == 2


def test_an_event_that_cannot_be_applied_is_parked_and_the_follower_moves_on(log, caplog):
    log.commit(1, 2, 3)
    handler = Recorder(poison={2})
    follower, _ = follower_of(log, handler)

    assert follower.catch_up() == 3

    assert handler.applied == [1, 3] and follower.position() == 3
    [parked] = follower.failures()
    assert (parked.notification_id, parked.event_type, parked.error) == (
        2, "Opened", "ValueError: cannot apply 2")
    assert parked.subject == str(log.visible[2].originator_id)
    assert "parked notification 2" in caplog.text

    handler.poison.clear()  # the cause is fixed
    assert follower.retry_failures() == {"cleared": [2], "parked": []}
    assert handler.applied == [1, 3, 2] and follower.failures() == []


def test_a_transient_failure_is_retried_never_parked(log):
    log.commit(1, 2)
    handler = Recorder()
    handler.transient_failures = 1
    follower, _ = follower_of(log, handler)
    with pytest.raises(Transient):
        follower.catch_up()
    assert follower.position() == 0 and follower.failures() == []
    assert follower.catch_up() == 2 and handler.applied == [1, 2]


def test_a_reader_waits_for_the_position_and_gives_up_after_its_timeout(log):
    log.commit(1, 2)
    follower, _ = follower_of(log, Recorder())
    assert follower.wait_for(2, timeout=0.05) is False  # nobody follows: the read goes on
    later = threading.Timer(0.05, follower.catch_up)
    later.start()
    assert follower.wait_for(2, timeout=10) is True
    later.join()


def test_positions_an_earlier_version_kept_are_carried_over(log):
    app = App(log)
    with app.sql.transaction() as tx:
        tx.execute("CREATE TABLE outbox_positions (name TEXT PRIMARY KEY, position BIGINT)")
        tx.execute("CREATE TABLE projection_positions (name TEXT PRIMARY KEY, position BIGINT)")
        tx.execute("INSERT INTO outbox_positions VALUES ('ciudad', 7)")
        tx.execute("INSERT INTO projection_positions VALUES ('reportes', 5)")
    relay = LogFollower("ciudad.relay", app, Recorder())
    views = LogFollower("reportes", app, Recorder())
    assert (relay.position(), views.position()) == (7, 5)
