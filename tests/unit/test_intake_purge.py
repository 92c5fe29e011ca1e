"""What a citizen started and never finished is not kept: chatbot conversations and submissions
whose report was never opened are purged after their window, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.intake.app_api import AppApi
from services.intake.store import IntakeStore
from shared.chassis.sqlstore import SqlStore


@pytest.fixture
def store(store_env):
    sql = SqlStore.from_env(store_env)
    yield IntakeStore(sql)
    sql.close()


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def age_conversation(store: IntakeStore, sender: str, hours: float) -> None:
    store.sql.run("UPDATE intake_conversations SET updated_at = %s WHERE sender = %s",
                  (hours_ago(hours), sender))


def age_submission(store: IntakeStore, key: str, hours: float) -> None:
    store.sql.run("UPDATE intake_submissions SET created_at = %s WHERE idempotency_key = %s",
                  (hours_ago(hours), key))


def claim(store: IntakeStore, key: str) -> str:
    return store.claim(key, f"fingerprint-{key}", "app", f"token-{key}", f"access-{key}").outcome


def test_a_conversation_left_for_days_is_deleted_with_what_the_citizen_said(store):
    store.save_conversation("whatsapp:+5214420000001", {"step": "location", "text": "bache"}, 0)
    store.save_conversation("whatsapp:+5214420000002", {"step": "description"}, 0)
    age_conversation(store, "whatsapp:+5214420000001", 50)

    assert store.forget_conversations(datetime.now(UTC) - timedelta(hours=48)) == 1

    assert store.conversation("whatsapp:+5214420000001").version == 0
    assert store.conversation("whatsapp:+5214420000002").state == {"step": "description"}


def test_a_conversation_the_citizen_came_back_to_is_kept(store):
    store.save_conversation("sms:+5214420000003", {"step": "location"}, 0)
    age_conversation(store, "sms:+5214420000003", 50)
    store.save_conversation("sms:+5214420000003", {"step": "description"}, 1)  # a new message

    assert store.forget_conversations(datetime.now(UTC) - timedelta(hours=48)) == 0
    assert store.conversation("sms:+5214420000003").state == {"step": "description"}


def test_an_unfinished_submission_is_deleted_and_a_finished_one_kept(store):
    assert claim(store, "app:abandoned") == "new"
    assert claim(store, "app:recent") == "new"
    assert claim(store, "app:answered") == "new"
    store.complete("app:answered", "QRO-2026-000001", {"folio": "QRO-2026-000001"})
    for key in ("app:abandoned", "app:answered"):
        age_submission(store, key, 72)

    assert store.forget_unfinished(datetime.now(UTC) - timedelta(hours=48)) == 1

    known = {row[0] for row in store.sql.run("SELECT idempotency_key FROM intake_submissions")[0]}
    assert known == {"app:recent", "app:answered"}
    assert store.folio_for_token("token-app:abandoned") == (False, None)
    # The citizen's app retrying after that starts afresh (tracking still refuses a second
    # report for the same key if the first one was opened after all).
    assert claim(store, "app:abandoned") == "new"


def test_the_purge_works_in_bounded_batches(store):
    for n in range(5):
        store.save_conversation(f"sms:+52144200001{n}", {"step": "location"}, 0)
        age_conversation(store, f"sms:+52144200001{n}", 100 + n)
        claim(store, f"app:k{n}")
        age_submission(store, f"app:k{n}", 100 + n)
    cutoff = datetime.now(UTC) - timedelta(hours=48)

    assert [store.forget_conversations(cutoff, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert [store.forget_unfinished(cutoff, limit=3) for _ in range(3)] == [3, 2, 0]


def sweep(store: IntakeStore, **config: str) -> None:
    """The hourly timer, as nameko runs it on a worker of IntakeService."""
    AppApi.purge_unfinished(SimpleNamespace(intake=SimpleNamespace(store=store), config=config))


def test_the_hourly_sweep_reads_its_windows_from_the_configuration(store):
    store.save_conversation("sms:+5214420000020", {"step": "location"}, 0)
    age_conversation(store, "sms:+5214420000020", 30)
    claim(store, "app:slow")
    age_submission(store, "app:slow", 30)

    sweep(store, CHATBOT_RETENTION_HOURS="48", UNFINISHED_SUBMISSION_HOURS="48")
    assert store.conversation("sms:+5214420000020").version == 1
    assert store.folio_for_token("token-app:slow")[0]

    sweep(store, CHATBOT_RETENTION_HOURS="0", UNFINISHED_SUBMISSION_HOURS="24")
    assert store.conversation("sms:+5214420000020").version == 1  # 0: kept
    assert not store.folio_for_token("token-app:slow")[0]

    sweep(store, CHATBOT_RETENTION_HOURS="24", UNFINISHED_SUBMISSION_HOURS="0")
    assert store.conversation("sms:+5214420000020").version == 0
