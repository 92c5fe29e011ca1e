"""Retry arithmetic and the headers a failed event carries to its next attempt and to parking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.chassis.deadletters import (
    ATTEMPTS,
    ERROR_MESSAGE,
    ERROR_TYPE,
    FIRST_FAILED_AT,
    LAST_FAILED_AT,
    REPLAYS,
    Topology,
    dead_queue_name,
    failure_headers,
    live_queue_name,
    replay_headers,
    retry_delays,
)

MONDAY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TUESDAY = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)


def test_each_retry_waits_its_own_delay_and_the_last_delay_repeats():
    assert retry_delays(4, (0.2, 1.0, 5.0)) == (0.2, 1.0, 5.0)
    assert retry_delays(5, (0.2, 1.0)) == (0.2, 1.0, 1.0, 1.0)
    assert retry_delays(1, ()) == ()


@pytest.mark.parametrize("max_attempts, backoff", [(0, (1.0,)), (3, ()), (3, (0.0,))])
def test_a_consumer_cannot_be_configured_to_never_try_or_to_retry_without_waiting(
        max_attempts, backoff):
    with pytest.raises(ValueError):
        retry_delays(max_attempts, backoff)


def test_the_first_failure_is_attempt_one_and_remembers_when_it_happened():
    headers = failure_headers({"ce-type": "mx.expediente.report.closed"},
                              RuntimeError("SMTP refused"), "notifications.handle", MONDAY)

    assert headers[ATTEMPTS] == 1
    assert headers[ERROR_TYPE] == "builtins.RuntimeError"
    assert headers[ERROR_MESSAGE] == "SMTP refused"
    assert headers[FIRST_FAILED_AT] == headers[LAST_FAILED_AT] == MONDAY.isoformat()
    assert headers["ce-type"] == "mx.expediente.report.closed"


def test_a_later_failure_counts_on_keeps_the_first_time_and_drops_the_brokers_history():
    first = failure_headers({}, RuntimeError("SMTP refused"), "notifications.handle", MONDAY)
    redelivered = {**first, "x-death": [{"count": 1}], "x-first-death-queue": "q.retry.1"}

    second = failure_headers(redelivered, TimeoutError("SMTP timed out"), "notifications.handle",
                             TUESDAY)

    assert second[ATTEMPTS] == 2
    assert second[FIRST_FAILED_AT] == MONDAY.isoformat()
    assert second[LAST_FAILED_AT] == TUESDAY.isoformat()
    assert second[ERROR_TYPE] == "builtins.TimeoutError"
    assert not any(key.startswith(("x-death", "x-first-death")) for key in second)


def test_a_replayed_letter_starts_a_fresh_round_of_attempts():
    parked = failure_headers({"ce-type": "t"}, RuntimeError("down"), "c", MONDAY)

    replayed = replay_headers(replay_headers(parked))

    assert replayed == {"ce-type": "t", "x-expediente-consumer": "c", REPLAYS: 2}


def test_the_dead_queue_is_named_after_the_consumer_queue_either_way_round():
    assert dead_queue_name("billing.handle_report_event") == "billing.handle_report_event.dead"
    assert dead_queue_name("billing.handle_report_event.dead") == "billing.handle_report_event.dead"
    assert live_queue_name("billing.handle_report_event.dead") == "billing.handle_report_event"


def test_delay_queues_send_expired_messages_back_to_the_consumer_queue():
    topology = Topology("crews.handle_report_event", ("mx.expediente.report.*",),
                        "expediente.events", delays=(0.2, 1.5))

    live, first, second, dead = topology.entities()

    assert [q.name for q in (live, first, second, dead)] == topology.queue_names()
    assert {b.routing_key for b in live.bindings} == {"mx.expediente.report.*",
                                                      "crews.handle_report_event"}
    assert first.queue_arguments == {"x-message-ttl": 200,
                                     "x-dead-letter-exchange": "expediente.retry",
                                     "x-dead-letter-routing-key": "crews.handle_report_event"}
    assert second.queue_arguments["x-message-ttl"] == 1500
    assert all(q.durable for q in (live, first, second, dead))


def test_on_quorum_queues_expired_retries_are_dead_lettered_at_least_once():
    topology = Topology("crews.h", ("#",), "expediente.events", delays=(1.0,),
                        queue_type="quorum")

    live, delay, dead = topology.entities()

    assert live.queue_arguments == dead.queue_arguments == {"x-queue-type": "quorum"}
    assert delay.queue_arguments["x-dead-letter-strategy"] == "at-least-once"
    assert delay.queue_arguments["x-overflow"] == "reject-publish"
