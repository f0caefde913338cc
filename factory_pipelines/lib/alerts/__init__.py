"""Alerts on failed asset checks: the warehouse table and its record/list/ack (`store`), and the optional signed
webhook (`webhook`).

Why: open-source Dagster does not alert on a failed asset check (a failed check does not fail its run, so
run-failure sensors stay silent; dagster#29896, #17573). The alerts domain's sensor turns every failed check
evaluation into a row here, so on-call sees it, acknowledges it, and promotion can refuse to go ahead while
an error-level alert on an agent is open. Dagster-free: the sensor hands over plain `CheckFailure`s.
"""
