"""The operator's `expediente-crews`: a crew formed and a catalog loaded from the terminal, on a
SQLite store named by the environment as the service's is; bad input refused with the reason
and nothing written."""

from __future__ import annotations

import json

import pytest

from services.crews import cli
from services.crews.application import CrewsApplication
from shared.chassis.config import load_config
from shared.chassis.runtime import app_env
from tests.support import ROOT

SEED = str(ROOT / "services/crews/materials_seed.json")


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    monkeypatch.setenv("CREWS_SQLITE_DBNAME", str(tmp_path / "crews.sqlite"))


def crews(*argv: str, capsys) -> tuple[int, dict, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, (json.loads(out) if status == 0 else {}), err


def events() -> int:
    app = CrewsApplication(app_env(load_config(cli.CONFIG), cli.APP_KEYS))
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


def test_an_operator_forms_a_crew_from_the_terminal(store, capsys):
    status, crew, _ = crews("create-crew", "C-41", "Bacheo Juriquilla", "obras_publicas",
                            capsys=capsys)
    assert status == 0 and crew["code"] == "C-41"
    status, crew, _ = crews("--by", "lupita", "add-member", "C-41", "ramon", "Ramón Flores",
                            capsys=capsys)
    assert crew["members"] == [{"member_id": "ramon", "name": "Ramón Flores"}]
    assert crews("show", "C-41", capsys=capsys)[1]["version"] == 2


def test_the_catalog_loads_once_and_a_price_changes_from_its_moment(store, capsys):
    status, loaded, _ = crews("load-materials", SEED, "--from", "2026-01-01T00:00:00-06:00",
                              capsys=capsys)
    assert status == 0 and len(loaded["added"]) == 12 and loaded["already_there"] == []
    again = crews("load-materials", SEED, capsys=capsys)[1]
    assert again == {"added": [], "already_there": loaded["added"]}
    status, material, _ = crews("change-price", "MEZ-ASF", "1990.50", "--from",
                                "2027-01-01T00:00:00-06:00", capsys=capsys)
    assert [p["unit_cost"] for p in material["prices"]] == ["1850.00", "1990.50"]


@pytest.mark.parametrize("argv", [
    ("create-crew", "c-41", "Bacheo", "obras_publicas"),
    ("create-crew", "C-41", "Bacheo\x00", "obras_publicas"),
    ("add-material", "MEZ", "Mezcla", "cubeta", "10.00"),
    ("add-material", "MEZ", "Mezcla", "m3", "diez"),
    ("add-material", "MEZ", "Mezcla", "m3", "10.00", "--from", "2027-01-01T00:00:00"),
    ("change-price", "NADA", "1.00", "--from", "2027-01-01T00:00:00-06:00"),
    ("add-member", "C-99", "ramon", "Ramón"),
])
def test_bad_input_is_refused_with_the_reason_and_writes_nothing(store, capsys, argv):
    before = events()
    status, _, err = crews(*argv, capsys=capsys)
    assert status == 2 and err.startswith("refused: ")
    assert events() == before


def test_a_catalog_file_with_one_bad_entry_adds_nothing(store, capsys, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([
        {"code": "MEZ-ASF", "description": "Mezcla", "unit": "m3", "unit_cost": "1850.00"},
        {"code": "TUB", "description": "Tubo", "unit": "m", "unit_cost": 96.4}]))
    status, _, err = crews("load-materials", str(path), capsys=capsys)
    assert status == 2 and "entry 2" in err and "unit_cost" in err
    assert events() == 0
    path.write_text("{not json")
    assert crews("load-materials", str(path), capsys=capsys)[0] == 2
