"""Billing's Prometheus figures: payments by channel and concept, pesos collected, statements
sent and how far a batch got (counted after the payment is stored, never before)."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import Counter, Gauge

PAYMENTS = Counter("expediente_billing_payments_total",
                   "Payments applied (a repeat of a reference is not counted again)",
                   ["channel", "concept"])
COLLECTED = Counter("expediente_billing_collected_pesos_total",
                    "Pesos collected by the payments applied", ["channel", "concept"])
REVERSALS = Counter("expediente_billing_reversals_total", "Payments reversed", ["concept"])
DECLINED = Counter("expediente_billing_online_declined_total",
                   "Online payments the provider declined (nothing applied)", ["concept"])
STATEMENTS = Counter("expediente_billing_statements_sent_total",
                     "Statements handed to notifications, by channel", ["channel"])
DOCUMENTS = Counter("expediente_billing_documents_rendered_total", "PDFs rendered", ["kind"])
BATCH_DONE = Gauge("expediente_billing_batch_accounts_done",
                   "Accounts a statement batch has gone through", ["batch"])
BATCH_TOTAL = Gauge("expediente_billing_batch_accounts_total",
                    "Accounts a statement batch has to go through", ["batch"])
IMPORT_ROWS = Counter("expediente_billing_bank_rows_total",
                      "Bank file rows imported, by outcome", ["outcome"])


def paid(channel: str, concept: str, amount: Decimal) -> None:
    PAYMENTS.labels(channel, concept).inc()
    COLLECTED.labels(channel, concept).inc(float(amount))  # a gauge of pesos; the ledger is exact
