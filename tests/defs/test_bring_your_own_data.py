"""Bring your own data: a helpdesk export in another shape (other headers, `;`, day-first dates,
numeric ids, an extra column, a missing optional one) declared in the user's own folder, run
through the same data plane as the demo, without touching the shipped declarations."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from typer.testing import CliRunner

from factory_pipelines.cli import app
from factory_pipelines.definitions import build_definitions
from factory_pipelines.demo import write_demo_data
from factory_pipelines.instance import latest_check_statuses, prepare_instance
from factory_pipelines.runs import run_partitions
from factory_pipelines.settings import get_settings
from tests.conftest import use_home

DECLARATION = """
name: tickets
description: Tickets exported from our helpdesk (semicolon CSV, day-first dates).
format: csv
file_pattern: "export_*.csv"
contract: tickets_v1
primary_key: [ticket_id]
max_quarantine_rate: 0.2
csv: {delimiter: ";", timestamp_format: "%d/%m/%Y %H:%M"}
columns:
  - {name: ticket_id, type: VARCHAR, required: true, source_name: "Ticket ID"}
  - {name: customer_id, type: VARCHAR, required: true, source_name: "Customer"}
  - {name: created_at, type: TIMESTAMP, required: true, source_name: "Created"}
  - {name: channel, type: VARCHAR, required: true, enum: [email, chat, phone, web], source_name: "Channel",
     value_map: {"E-mail": email, "Live chat": chat}}
  - {name: subject, type: VARCHAR, required: true, source_name: "Subject"}
  - {name: body, type: VARCHAR, required: true, source_name: "Description"}
  - {name: order_id, type: VARCHAR, source_name: "Order"}
  - {name: in_reply_to, type: VARCHAR}
"""
EXPORT = """Ticket ID;Customer;Created;Channel;Subject;Description;Order;Priority
48213;C-00001;01/11/2026 09:15;E-mail;Refund please;"My order O-1234567 arrived broken; I want my $49.99 back!";O-1234567;High
48214;C-00002;01/11/2026 10:02;Live chat;Login;Cannot log in since yesterday;;Low
48215;C-00003;01/11/2026 11:40;fax;Invoice;Please resend the invoice;;Low
48216;C-00004;31/11/2026 12:00;web;Hello;Bad date;;Low
48217;C-00005;01/11/2026 13:30;phone;Shipping;Where is my parcel?;;Medium
"""


@pytest.mark.slow
def test_own_export_runs_through_the_data_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "my_sources"
    own.mkdir()
    (own / "tickets.yaml").write_text(DECLARATION)
    settings = use_home(monkeypatch, tmp_path / "home", user_sources_dir=str(own))
    write_demo_data(Path(settings.landing_dir), date(2026, 11, 1), date(2026, 11, 1), tickets_per_day=20,
                    customers=30, defect_rate=0.0)
    folder = Path(settings.landing_dir) / "tickets" / "2026-11-01"
    (folder / "tickets.csv").unlink()
    (folder / "export_0001.csv").write_text(EXPORT)
    prepare_instance(settings)

    outcome = run_partitions("data_plane_job", ["2026-11-01"], definitions=build_definitions(settings))[0]

    assert outcome.success, (outcome.failed_steps, outcome.error, outcome.check_descriptions)
    raw = outcome.materialized["raw/tickets"]
    assert (raw["rows_read"], raw["rows_loaded"], raw["rows_quarantined"]) == (5, 3, 2)
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        rules = dict(con.execute("SELECT rule, column_name FROM raw.quarantine WHERE source = 'tickets'").fetchall())
        assert rules == {"enum": "channel", "type": "created_at"}
        first = con.execute("SELECT created_at::VARCHAR, channel, body, _extra->>'$.Priority' FROM raw.tickets "
                            "WHERE ticket_id = '48213'").fetchone()
        assert first == ("2026-11-01 09:15:00", "email", "My order O-1234567 arrived broken; I want my $49.99 back!",
                         "High")
        assert con.execute("SELECT channel FROM raw.tickets WHERE ticket_id = '48214'").fetchone() == ("chat",)
        features = con.execute(f"SELECT ticket_id, mentions_refund, mentions_amount, has_order_ref FROM read_parquet("
                               f"'{settings.feature_data_dir}/ticket_features/2026-11-01.parquet') ORDER BY 1").fetchall()
    assert features[0] == ("48213", True, True, True)
    assert "features/online_store" in outcome.materialized
    get_settings.cache_clear()


@pytest.mark.slow
def test_tickets_only_leaves_out_what_needs_the_other_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "my_sources"
    own.mkdir()
    (own / "tickets.yaml").write_text(DECLARATION)
    for source in ("customers", "orders", "kb_articles"):
        (own / f"{source}.yaml").write_text(f"name: {source}\nenabled: false\n")
    settings = use_home(monkeypatch, tmp_path / "home", user_sources_dir=str(own))
    folder = Path(settings.landing_dir) / "tickets" / "2026-11-01"
    folder.mkdir(parents=True)
    (folder / "export_0001.csv").write_text(EXPORT)
    prepare_instance(settings)
    defs = build_definitions(settings)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"raw/tickets", "staging/tickets", "features/ticket_features", "features/feast_registry",
                    "features/online_store", "registry/prompt_versions", "models/ticket_classifier",
                    "retention/purge"}, "retention purges the staged ticket text too, so it stays"
    assert "agents_job" not in {job.name for job in defs.jobs}, "both agents need the KB feed"

    outcome = run_partitions("data_plane_job", ["2026-11-01"], definitions=defs)[0]

    assert outcome.success, (outcome.failed_steps, outcome.error, outcome.check_descriptions)
    assert outcome.materialized["features/online_store"]["materialized_views"] == ["ticket_text_stats"]
    from factory_pipelines.defs.resources import build_resources

    online = build_resources(settings)["feature_store"].online_features([{"customer_id": "C-00001", "ticket_id": "48213"}])
    assert online["mentions_refund"] == [True] and online["plan"] == [None]
    get_settings.cache_clear()


# --- a new user's export: Latin-1, null tokens, columns it lacks, quiet days, rows of other days --------------

NEW_USER = """
name: tickets
description: Tickets from a Windows helpdesk (Latin-1, semicolons, 'None' for empty fields).
format: csv
file_pattern: "*.csv"
contract: tickets_v1
primary_key: [ticket_id]
allow_empty_days: true
partition_time: {column: created_at, out_of_partition: error}
csv: {delimiter: ";", encoding: latin-1, null_values: ["None", "NULL", "N/A"]}
columns:
  - {name: ticket_id, type: VARCHAR, required: true, source_name: "Ref"}
  - {name: customer_id, type: VARCHAR, required: false}
  - {name: created_at, type: TIMESTAMP, required: true, source_name: "Opened"}
  - {name: channel, type: VARCHAR, required: true, enum: [email, chat, phone, web], source_name: "Via"}
  - {name: subject, type: VARCHAR, required: true, max_length: 500, default: {from: body}}
  - {name: body, type: VARCHAR, required: true, source_name: "Text"}
  - {name: order_id, type: VARCHAR, source_name: "Order"}
  - {name: in_reply_to, type: VARCHAR}
"""
NEW_USER_EXPORT = """Ref;Opened;Via;Text;Order
R-1;2026-11-01 09:15:00;email;Ma commande est arrivée cassée, je veux être remboursé;O-1234567
R-2;2026-11-01 10:02:00;chat;Größe falsch, bitte umtauschen;None
R-3;2026-11-01 11:40:00;web;Où est mon colis ?;N/A
"""


def new_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declaration: str, days: dict[str, bytes]):
    own = tmp_path / "my_sources"
    own.mkdir()
    (own / "tickets.yaml").write_text(declaration)
    for source in ("customers", "orders", "kb_articles"):
        (own / f"{source}.yaml").write_text(f"name: {source}\nenabled: false\n")
    settings = use_home(monkeypatch, tmp_path / "home", user_sources_dir=str(own), start_date=min(days),
                        end_date=max(days))
    for day, content in days.items():
        folder = Path(settings.landing_dir) / "tickets" / day
        folder.mkdir(parents=True)
        (folder / "export.csv").write_bytes(content)
    prepare_instance(settings)
    return settings, build_definitions(settings)


def check_metadata(run_id: str, check: str) -> dict:

    with dg.DagsterInstance.get() as instance:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = record.dagster_event.event_specific_data
            if evaluation.check_name == check:
                return {k: v.value for k, v in evaluation.metadata.items()}
    raise AssertionError(f"no evaluation of {check} in run {run_id}")


def test_new_users_latin1_export_and_a_quiet_day_run_green(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, defs = new_user(tmp_path, monkeypatch, NEW_USER, {
        "2026-11-01": NEW_USER_EXPORT.encode("latin-1"), "2026-11-02": b"Ref;Opened;Via;Text;Order\n"})

    busy, quiet = run_partitions("data_plane_job", ["2026-11-01", "2026-11-02"], definitions=defs)

    assert busy.success, (busy.failed_steps, busy.error, busy.check_descriptions)
    raw = busy.materialized["raw/tickets"]
    assert (raw["rows_read"], raw["rows_loaded"], raw["rows_quarantined"]) == (3, 3, 0)
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT ticket_id, customer_id, subject, order_id FROM staging.tickets ORDER BY 1").fetchall() == [
            ("R-1", None, "Ma commande est arrivée cassée, je veux être remboursé", "O-1234567"),
            ("R-2", None, "Größe falsch, bitte umtauschen", None), ("R-3", None, "Où est mon colis ?", None)]
    adjusted = check_metadata(busy.run_id, "contract_staging_tickets_v1")["adjusted_by_declaration"]
    assert any(n.startswith("dropped expect_column_values_to_not_be_null(customer_id): customer_id is optional")
               for n in adjusted), adjusted
    assert quiet.success, (quiet.failed_steps, quiet.error, quiet.check_descriptions)
    assert quiet.materialized["raw/tickets"]["rows_read"] == 0
    assert all(quiet.checks.values()) and "raw/tickets:contract_tickets_v1" in quiet.checks
    get_settings.cache_clear()


def test_a_day_whose_rows_were_all_quarantined_is_not_a_quiet_day(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """allow_empty_days excuses a day without rows, not a day whose header was renamed (every row quarantined):
    the raw contract itself fails, whatever the quarantine-rate bound says."""
    renamed = NEW_USER_EXPORT.replace("Opened", "Opened at").encode("latin-1")
    lenient = NEW_USER.replace("allow_empty_days: true", "allow_empty_days: true\nmax_quarantine_rate: 1.0")
    settings, defs = new_user(tmp_path, monkeypatch, lenient, {"2026-11-01": renamed})

    (outcome,) = run_partitions("data_plane_job", ["2026-11-01"], definitions=defs)

    raw = outcome.materialized["raw/tickets"]
    assert (raw["rows_read"], raw["rows_loaded"], raw["quarantined_by_rule"]) == (3, 0, {"missing_column": 3})
    assert outcome.checks["raw/tickets:quarantine_rate_within_bound"] is True
    assert outcome.checks["raw/tickets:contract_tickets_v1"] is False and not outcome.success
    adjusted = check_metadata(outcome.run_id, "contract_tickets_v1")["adjusted_by_declaration"]
    assert any(n.startswith("not a quiet day: 3 rows read, none loaded") for n in adjusted), adjusted
    get_settings.cache_clear()


def test_eight_months_in_one_day_folder_are_quarantined_and_block(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"R-{m}-{d};2026-{m:02d}-{d:02d} 10:00:00;email;Old ticket {m}/{d};None"
             for m in range(3, 11) for d in (1, 15)] + ["R-today;2026-11-01 09:00:00;chat;New ticket;None"]
    export = ("Ref;Opened;Via;Text;Order\n" + "\n".join(lines) + "\n").encode("latin-1")
    settings, defs = new_user(tmp_path, monkeypatch, NEW_USER, {"2026-11-01": export})

    (outcome,) = run_partitions("data_plane_job", ["2026-11-01"], definitions=defs)

    assert not outcome.success
    raw = outcome.materialized["raw/tickets"]
    assert (raw["rows_read"], raw["rows_loaded"], raw["quarantined_by_rule"]) == (17, 1, {"out_of_partition": 16})
    assert outcome.checks["raw/tickets:quarantine_rate_within_bound"] is False
    assert "staging/tickets" not in outcome.materialized
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        detail = con.execute("SELECT detail FROM raw.quarantine WHERE payload LIKE '%R-3-1\"%'").fetchone()[0]
    assert "2026-03-01 10:00:00 is not in 2026-11-01, the days of landing folder 2026-11-01" in detail
    get_settings.cache_clear()


def test_warn_loads_rows_of_other_days_and_flags_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = ("Ref;Opened;Via;Text;Order\nR-1;2026-11-01 09:00:00;email;Today;None\n"
              "R-2;2026-03-01 09:00:00;email;Back in March;None\n").encode("latin-1")
    settings, defs = new_user(tmp_path, monkeypatch, NEW_USER.replace("out_of_partition: error",
                                                                      "out_of_partition: warn"), {"2026-11-01": export})

    (outcome,) = run_partitions("data_plane_job", ["2026-11-01"], definitions=defs)

    assert outcome.materialized["raw/tickets"]["rows_loaded"] == 2
    assert outcome.checks["raw/tickets:timestamps_in_partition"] is False, "a warning, not a block"
    assert "1 of 2 loaded rows have created_at outside 2026-11-01 .. 2026-11-01" in (
        outcome.check_descriptions["raw/tickets:timestamps_in_partition"])
    assert "staging/tickets" in outcome.materialized
    check = dg.AssetCheckKey(dg.AssetKey(["raw", "tickets"]), "timestamps_in_partition")
    with dg.DagsterInstance.get() as instance:  # recorded for the day, so `factory status` shows it
        assert latest_check_statuses(instance, check, ["2026-11-01"]) == {"2026-11-01": "FAILED"}
    day = ["--start", "2026-11-01", "--end", "2026-11-01"]
    result = CliRunner().invoke(app, ["run", "--job", "data_plane_job", *day])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning checks failed: 2026-11-01 raw/tickets:timestamps_in_partition" in said, said
    assert "every check passed" not in said
    status = CliRunner().invoke(app, ["status", *day]).output
    assert any("timestamps_in_partition" in line and "✗" in line for line in status.splitlines()), status
    get_settings.cache_clear()


# --- a French helpdesk export: Windows-1252, `;`, day-first times, NULL/N/A, multi-line bodies, bad rows ------

HELPDESK = """
name: tickets
description: Tickets from our French helpdesk (Windows-1252, semicolons, NULL/N/A for empty fields).
format: csv
file_pattern: "*.csv"
contract: tickets_v1
primary_key: [ticket_id]
max_quarantine_rate: 0.5
allow_empty_days: true
partition_time: {column: created_at, out_of_partition: error}
csv: {delimiter: ";", encoding: windows-1252, null_values: ["NULL", "N/A"], timestamp_format: "%d/%m/%Y %H:%M"}
columns:
  - {name: ticket_id, type: VARCHAR, required: true, source_name: "N° ticket", pattern: "ZD-[0-9]{5}"}
  - {name: customer_id, type: VARCHAR, default: "C-00000"}
  - {name: created_at, type: TIMESTAMP, required: true, source_name: "Créé le"}
  - {name: channel, type: VARCHAR, required: true, enum: [email, chat, phone, web], source_name: "Canal",
     value_map: {"E-mail": email, "Chat": chat, "Téléphone": phone, "Web": web}}
  - {name: subject, type: VARCHAR, required: true, max_length: 500, source_name: "Objet"}
  - {name: body, type: VARCHAR, required: true, source_name: "Message"}
  - {name: order_id, type: VARCHAR, source_name: "Commande"}
  - {name: in_reply_to, type: VARCHAR}
"""
HELPDESK_HEADER = "Priorité;N° ticket;Créé le;Canal;Demandeur;Objet;Message;Commande;Agent assigné"


def helpdesk_day(*rows: str) -> bytes:
    return ("\r\n".join([HELPDESK_HEADER, *rows]) + "\r\n").encode("cp1252")


HELPDESK_DAYS = {
    "2026-11-03": helpdesk_day(
        'Haute;ZD-10001;03/11/2026 09:15;E-mail;José Müller;Remboursement;"Bonjour,\nma commande O-1234567 est '
        'arrivée cassée.\nJe veux mes 49,99 € — merci !";O-1234567;Zoé',
        'Basse;ZD-10002;03/11/2026 10:02;Chat;Chloé Dubois;Connexion;"Plus de connexion ""depuis hier""";NULL;N/A',
        "Moyenne;ZD-10003;03/11/2026 11:40;Fax;François Lefèvre;Facture;Renvoyez la facture;N/A;Zoé",  # enum
        "Moyenne;ZD-10004;03/11/2026 12:00;Web;Renée Øster;N/A;Sujet manquant;NULL;Zoé",  # not_null
        "Basse;ZD-10002;03/11/2026 13:30;Téléphone;Chloé Dubois;Connexion (bis);Doublon;NULL;Zoé",  # duplicate_key
        "Haute;ZD-10005;03/11/2026 14:05;Téléphone;Ana Núñez;Colis;Où;est;mon colis;NULL;Zoé",  # malformed_row
        "Basse;ZD-10006;03/10/2026 08:00;Web;Hélène Garçon;Ancien;Le mois dernier;NULL;Zoé",  # out_of_partition
        "Basse;ZD-10007;31/11/2026 08:00;Web;Hélène Garçon;Date;Date impossible;NULL;Zoé",  # type
        'Basse;ZD-10008;03/11/2026 23:59;Web;Bjørn Ærø;Dernier;"Fin de journée – “citation”";O-7654321;Zoé'),
    "2026-11-04": helpdesk_day("Basse;ZD-10009;04/11/2026 08:30;E-mail;Élodie;Question;Prix: 12 €;NULL;Zoé",
                               "Basse;ZD-10010;04/11/2026 09:30;Web;Ügur;Retour;Retour produit;O-1111111;N/A"),
    "2026-11-05": helpdesk_day(),  # a quiet day: the header only
}


@pytest.mark.slow
def test_french_helpdesk_export_quarantines_each_bad_row_with_its_rule(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings, defs = new_user(tmp_path, monkeypatch, HELPDESK, HELPDESK_DAYS)

    busy, clean, quiet = run_partitions("data_plane_job", list(HELPDESK_DAYS), definitions=defs)

    for outcome in (busy, clean, quiet):
        assert outcome.success, (outcome.failed_steps, outcome.error, outcome.check_descriptions)
        assert all(outcome.checks.values()), outcome.check_descriptions
    raw = busy.materialized["raw/tickets"]
    assert (raw["rows_read"], raw["rows_loaded"], raw["rows_quarantined"]) == (9, 3, 6)
    assert quiet.materialized["raw/tickets"]["rows_read"] == 0
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        quarantined = con.execute(
            "SELECT rule, column_name, source_file, coalesce(source_row, source_line) IS NOT NULL, payload "
            "FROM raw.quarantine WHERE source = 'tickets' ORDER BY rule").fetchall()
        loaded = con.execute("SELECT ticket_id, customer_id, channel, body, _extra->>'$.Priorité' FROM raw.tickets "
                             "WHERE _partition = DATE '2026-11-03' ORDER BY 1").fetchall()
    assert [(rule, column) for rule, column, *_ in quarantined] == [
        ("duplicate_key", "ticket_id"), ("enum", "channel"), ("malformed_row", None), ("not_null", "subject"),
        ("out_of_partition", "created_at"), ("type", "created_at")]
    assert all(file.endswith("2026-11-03/export.csv") and located for _, _, file, located, _ in quarantined)
    assert all(ticket in payload for (*_, payload), ticket in zip(quarantined, [
        "ZD-10002", "ZD-10003", "ZD-10005", "ZD-10004", "ZD-10006", "ZD-10007"], strict=True))
    assert loaded == [
        ("ZD-10001", "C-00000", "email", "Bonjour,\nma commande O-1234567 est arrivée cassée.\nJe veux mes 49,99 € — "
         "merci !", "Haute"),
        ("ZD-10002", "C-00000", "chat", 'Plus de connexion "depuis hier"', "Basse"),
        ("ZD-10008", "C-00000", "web", "Fin de journée – “citation”", "Basse")]
    get_settings.cache_clear()
