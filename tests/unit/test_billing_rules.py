"""Billing's money and rules as the treasury lives them: predial discounts that change at midnight
between January and February, surcharges per month started, water priced block by block, fines in
UMAs with a discount for paying soon, and rules files an admin can get wrong in many ways."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing import rulesfile
from services.billing.money import cents, fmt, parse, percent
from services.billing.rules import (
    NotInRules,
    RulesError,
    clerk_discount,
    consumption_charge,
    early_discount,
    fine_amount,
    fine_discount,
    late_surcharge,
    months_late,
    predial_levy,
    water_charge,
)

RULES = rulesfile.RULES
D = Decimal
PREDIAL = rulesfile.load("predial", 2026)
AGUA = rulesfile.load("agua", 2026)
MULTAS = rulesfile.load("multas", 2026)
LEVY = D("2000.00")

amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False,
                      allow_infinity=False)
percents = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False,
                       allow_infinity=False)
days_of_2026 = st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31))


def edited(tmp_path: Path, concept: str, old: str, new: str, year: int = 2026) -> Path:
    """The shipped 2026 file of `concept` with one edit, written as `year`'s file in tmp_path."""
    text = (RULES / f"{concept}-2026.yaml").read_text(encoding="utf-8")
    assert old in text, old
    (tmp_path / f"{concept}-{year}.yaml").write_text(text.replace(old, new), encoding="utf-8")
    return tmp_path


# ---- money -------------------------------------------------------------------------------------

def test_amounts_are_read_to_the_centavo_from_text_int_or_decimal():
    assert parse("1850.5") == D("1850.50") and str(parse("1850.5")) == "1850.50"
    assert parse(1850) == D("1850.00") and parse(D("0.1")) == D("0.10")
    assert parse("0.10") + parse("0.20") == parse("0.30")  # 0.1 + 0.2 != 0.3 in floats


@pytest.mark.parametrize("bad", [0.1, 1850.5, True])
def test_a_float_is_never_money(bad):
    with pytest.raises(TypeError):
        parse(bad)
    with pytest.raises(TypeError):
        cents(bad)
    with pytest.raises(TypeError):
        percent(D("100.00"), bad)


@pytest.mark.parametrize("text, says", [
    ("1,850.50", "plain digits"), ("$1850.50", "plain digits"), ("1850.505", "two decimals"),
    ("18 50", "two decimals"), ("", "two decimals"), ("NaN", "two decimals"),
    (D("1850.505"), "two decimals"), (D("Infinity"), "finite"),
])
def test_text_that_is_not_a_plain_amount_is_refused(text, says):
    with pytest.raises(ValueError, match=says):
        parse(text)


def test_rounding_is_half_up_once_at_the_end():
    assert cents(D("0.005")) == D("0.01") and cents(D("-0.005")) == D("-0.01")
    assert cents(D("2.675")) == D("2.68")  # round(2.675, 2) == 2.67 with floats
    assert percent(D("100.10"), 15) == D("15.02")  # 15.015
    assert percent(D("1700.01"), 50) == D("850.01")  # 850.005
    # Three months at 1.13 %: 33.91695 once, not 11.31 (11.30565) three times.
    assert late_surcharge(PREDIAL, D("1000.50"), date(2026, 3, 31), date(2026, 6, 1)) == D("33.92")


def test_amounts_read_as_a_citizen_reads_them():
    assert fmt(D("1850.5")) == "$1,850.50 MXN"
    assert fmt(D("1234567.8")) == "$1,234,567.80 MXN"
    assert fmt(0) == "$0.00 MXN" and fmt(D("-20")) == "-$20.00 MXN"
    with pytest.raises(ValueError, match="two decimals"):
        fmt(D("1.005"))  # rounding happens in cents(), never on display


@given(amounts, percents)
def test_a_percentage_never_exceeds_the_amount_and_has_two_decimals(amount, pct):
    part = percent(amount, pct)
    assert D(0) <= part <= amount and part.as_tuple().exponent == -2


# ---- predial -----------------------------------------------------------------------------------

def test_the_levy_is_the_cadastral_value_per_mil():
    assert predial_levy(PREDIAL, D("1250000.00")) == LEVY
    assert predial_levy(PREDIAL, "987654.32") == D("1580.25")  # 1580.246912


@pytest.mark.parametrize("paid_on, discount", [
    (date(2026, 1, 2), D("300.00")), (date(2026, 1, 31), D("300.00")),  # 15 %
    (date(2026, 2, 1), D("200.00")), (date(2026, 2, 28), D("200.00")),  # 10 %
    (date(2026, 3, 1), D("100.00")), (date(2026, 3, 31), D("100.00")),  # 5 %
    (date(2026, 4, 1), D("0.00")),
])
def test_the_early_discount_changes_at_midnight(paid_on, discount):
    assert early_discount(PREDIAL, LEVY, paid_on) == discount


def test_february_29_of_a_leap_year_still_has_februarys_discount(tmp_path):
    directory = edited(tmp_path, "predial", "2026-02-28", "2028-02-29", year=2028)
    leap = (directory / "predial-2028.yaml")
    leap.write_text(leap.read_text(encoding="utf-8").replace("2026", "2028"), encoding="utf-8")
    rules_2028 = rulesfile.load("predial", 2028, directory)
    assert early_discount(rules_2028, LEVY, date(2028, 2, 29)) == D("200.00")
    assert early_discount(rules_2028, LEVY, date(2028, 3, 1)) == D("100.00")


@pytest.mark.parametrize("paid_on, months", [
    (date(2026, 3, 30), 0), (date(2026, 3, 31), 0),  # on the due date: nothing
    (date(2026, 4, 1), 1),  # one day after: a month started
    (date(2026, 4, 30), 1),  # exactly one month after: still one
    (date(2026, 5, 1), 2), (date(2026, 5, 31), 2), (date(2026, 6, 1), 3),
    (date(2027, 3, 31), 12), (date(2027, 4, 1), 13),
])
def test_a_surcharge_for_every_month_started_after_the_due_date(paid_on, months):
    assert months_late(date(2026, 3, 31), paid_on) == months
    assert late_surcharge(PREDIAL, LEVY, date(2026, 3, 31), paid_on) == cents(D("22.60") * months)


@pytest.mark.parametrize("due, paid_on, months", [
    (date(2026, 1, 31), date(2026, 2, 28), 1), (date(2026, 1, 31), date(2026, 3, 1), 2),
    (date(2028, 1, 31), date(2028, 2, 29), 1), (date(2028, 1, 31), date(2028, 3, 1), 2),
    (date(2026, 1, 31), date(2026, 3, 31), 2), (date(2026, 1, 31), date(2026, 4, 1), 3),
    (date(2028, 2, 29), date(2028, 3, 29), 1), (date(2028, 2, 29), date(2028, 3, 30), 2),
    (date(2026, 12, 15), date(2027, 1, 15), 1), (date(2026, 12, 15), date(2027, 1, 16), 2),
])
def test_a_month_after_the_31st_ends_on_the_shorter_months_last_day(due, paid_on, months):
    assert months_late(due, paid_on) == months


@given(days_of_2026, days_of_2026)
def test_surcharges_only_grow_and_start_after_the_due_date(due, paid_on):
    months = months_late(due, paid_on)
    assert (months == 0) == (paid_on <= due)
    assert months_late(due, paid_on + timedelta(days=1)) >= months


def test_a_clerk_grants_only_the_listed_discounts():
    assert clerk_discount(PREDIAL, D("1700.01"), "adulto_mayor") == D("850.01")
    assert clerk_discount(PREDIAL, LEVY, "discapacidad") == D("1000.00")
    with pytest.raises(NotInRules, match="adulto_mayor, discapacidad"):
        clerk_discount(PREDIAL, LEVY, "amigo_del_alcalde")
    with pytest.raises(NotInRules, match="agua 2026 .allowed: none"):
        clerk_discount(AGUA, D("100.00"), "adulto_mayor")


@given(amounts, days_of_2026)
def test_no_early_discount_exceeds_the_levy(amount, paid_on):
    discount = early_discount(PREDIAL, amount, paid_on)
    assert D(0) <= discount <= amount and discount.as_tuple().exponent == -2


def test_a_discount_on_a_negative_or_float_charge_is_refused():
    with pytest.raises(ValueError, match="negative"):
        early_discount(PREDIAL, D("-1.00"), date(2026, 1, 2))
    with pytest.raises(TypeError):
        early_discount(PREDIAL, 2000.0, date(2026, 1, 2))


# ---- agua --------------------------------------------------------------------------------------

@pytest.mark.parametrize("m3, charge", [
    (0, "0.00"), (D("5"), "44.50"),
    (10, "89.00"),  # 10 m³ are all in the first block
    (D("10.001"), "89.01"),  # 89.0134: one litre at the second block's price
    (20, "223.00"), (25, "331.50"), (30, "440.00"), (31, "474.20"),
])
def test_water_is_priced_block_by_block(m3, charge):
    assert consumption_charge(AGUA, m3) == D(charge)


def test_a_months_water_bill_adds_the_service_fee():
    assert water_charge(AGUA, 20) == D("285.50")
    assert water_charge(AGUA, 0) == D("62.50")


def test_a_consumption_is_an_exact_non_negative_quantity():
    with pytest.raises(TypeError):
        consumption_charge(AGUA, 10.5)
    with pytest.raises(ValueError, match="negative"):
        consumption_charge(AGUA, -1)


@given(st.decimals(min_value=0, max_value=10**5, places=3, allow_nan=False, allow_infinity=False),
       st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False))
def test_more_water_never_costs_less(m3, more):
    charge = consumption_charge(AGUA, m3)
    assert consumption_charge(AGUA, m3 + more) >= charge and charge.as_tuple().exponent == -2


# ---- multas ------------------------------------------------------------------------------------

def test_a_fine_is_its_umas_times_the_years_uma():
    assert fine_amount(MULTAS, "semaforo_rojo") == D("1173.10")
    assert fine_amount(MULTAS, "doble_fila") == D("527.90")  # 4.5 × 117.31 = 527.895
    with pytest.raises(NotInRules, match="'no_existe'"):
        fine_amount(MULTAS, "no_existe")


@pytest.mark.parametrize("paid_on, discount", [
    (date(2026, 5, 4), D("263.95")),  # the ticket's own day
    (date(2026, 5, 14), D("263.95")),  # day 10: still within 10 days
    (date(2026, 5, 15), D("0.00")),  # day 11
])
def test_a_fine_paid_within_ten_days_is_half(paid_on, discount):
    assert fine_discount(MULTAS, D("527.90"), date(2026, 5, 4), paid_on) == discount


def test_a_fine_is_not_paid_before_its_ticket():
    with pytest.raises(ValueError, match="before the ticket"):
        fine_discount(MULTAS, D("527.90"), date(2026, 5, 4), date(2026, 5, 3))


# ---- the rules files ---------------------------------------------------------------------------

def test_every_shipped_file_loads_and_says_its_version():
    for concept in ("predial", "agua", "multas"):
        for year in (2026, 2027):
            loaded = rulesfile.load(concept, year)
            assert (loaded.concept, loaded.year, loaded.version) == (concept, year, 1)


@pytest.mark.parametrize("concept, old, new, says", [
    ("predial", "version: 1", "version: 1\ndescuento: 5", "unknown key 'descuento'"),
    ("predial", "percent: 15}", "percent: 15, nota: x}",
     r"early_discounts\[0\]: unknown key 'nota'"),
    ("predial", "version: 1", "", "missing key 'version'"),
    ("predial", "version: 1", "version: 1.5", "version is a whole number"),
    ("predial", "percent: 15}", "percent: 150}", "percentage from 0 to 100, not 150"),
    ("predial", "percent: 15}", "percent: -15}", "cannot be negative"),
    ("predial", "until: 2026-01-31", "until: 2026-03-01", "list the dates in order"),
    ("predial", "until: 2026-02-28", "until: 2026-01-31", "list the dates in order"),
    ("predial", "due: 2026-03-31", "due: 2026-03-15", "after the due date 2026-03-15"),
    ("predial", "until: 2026-02-28", "until: 2026-02-29", "day is out of range"),
    ("predial", "until: 2026-01-31", "until: 2025-01-31", "2025-01-31 is not in 2026"),
    ("predial", "surcharge_percent: 1.13", "surcharge_percent: .inf", "is a number"),
    ("predial", "surcharge_percent: 1.13", "surcharge_percent: 1,13", "is a number"),
    ("predial", "adulto_mayor: 50", "Adulto Mayor: 50", "not a code"),
    ("predial", "rate_per_mil: 1.6", "rate_per_mil: 1.6\nrate_per_mil: 2", "appears twice"),
    ("predial", "version: 1", "version: [1", "not valid YAML"),
    ("agua", "service_fee: 62.50", "service_fee: -62.50", "service_fee cannot be negative"),
    ("agua", "service_fee: 62.50", 'service_fee: "1,062.50"', "plain digits"),
    ("agua", "price: 8.90", "price: 8.905", "two decimals"),
    ("agua", "{from_m3: 10, to_m3: 20", "{from_m3: 8, to_m3: 20",
     r"blocks\[1\].from_m3 is 8, expected 10.*no overlap"),
    ("agua", "{from_m3: 10, to_m3: 20", "{from_m3: 12, to_m3: 20", "no gap"),
    ("agua", "{from_m3: 0, to_m3: 10", "{from_m3: 10, to_m3: 10", r"blocks\[0\].from_m3 is 10"),
    ("agua", "{from_m3: 10, to_m3: 20", "{from_m3: 10, to_m3: 10", "not above its from_m3"),
    ("agua", "{from_m3: 30, price: 34.20}", "{from_m3: 30, to_m3: 40, price: 34.20}",
     "last block has no to_m3"),
    ("agua", "due_days: 20", "due_days: -1", "whole number of days"),
    ("multas", "discount_percent: 50", "discount_percent: 100.01", "0 to 100"),
    ("multas", "umas: 10}", "umas: -10}", "umas cannot be negative"),
    ("multas", "uma: 117.31", "uma: 117.315", "two decimals"),
    ("multas", "sin_licencia:", "SIN-LICENCIA:", "not a code"),
])
def test_a_bad_rules_file_is_refused_naming_the_file_and_the_key(tmp_path, concept, old, new,
                                                                 says):
    directory = edited(tmp_path, concept, old, new)
    with pytest.raises(RulesError, match=says) as refused:
        rulesfile.load(concept, 2026, directory)
    assert str(refused.value).startswith(f"{concept}-2026.yaml")


def test_rules_that_do_not_exist_are_named(tmp_path):
    with pytest.raises(RulesError, match="no rules for agua 2031: .*agua-2031.yaml does not exist"):
        rulesfile.load("agua", 2031, tmp_path)
    with pytest.raises(RulesError, match="billing knows predial, agua, multas"):
        rulesfile.load("licencias", 2026)
    (tmp_path / "multas-2026.yaml").write_text("", encoding="utf-8")
    with pytest.raises(RulesError, match="the file is a mapping"):
        rulesfile.load("multas", 2026, tmp_path)
