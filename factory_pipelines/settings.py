"""The one place that reads the environment: a typed, frozen view of every setting.

Values come, highest first, from `FACTORY_*` environment variables, a `.env` file, and an optional
YAML settings file (`FACTORY_SETTINGS_FILE`, default `factory.yaml` at the repo root). Every path of
the embedded profile derives from `home` (`.factory/` in the repo by default), so one folder holds all
local state and one command wipes it. Choosing the production profile is configuration: point the
warehouse, Feast stores, MLflow and Dagster storage at servers here, never in code.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

# Library telemetry is off: the factory makes no network calls the user did not configure.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
    "DAGSTER_DISABLE_TELEMETRY": "true",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",  # Evidently's legacy module (its UI service reads DO_NOT_TRACK)
    "HF_HUB_OFFLINE": "1",
    "TQDM_DISABLE": "1",  # progress bars (MLflow's evaluation) would interleave with the commands' reports
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container user without a passwd entry)
        return "unknown"


def _settings_file() -> Path:
    return Path(os.environ.get("FACTORY_SETTINGS_FILE", REPO_ROOT / "factory.yaml"))


def _check_schedule(cron: str, timezone: str) -> None:
    """A cron string of five fields and a known IANA time zone (Dagster would only fail when loading)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if len(cron.split()) != 5:
        raise ValueError(f"drift_schedule_cron {cron!r} must have five fields (minute hour day month weekday)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"drift_schedule_timezone {timezone!r} is not an IANA time zone") from exc


class Settings(BaseSettings):
    """Every knob of the factory. Paths left empty are derived from `home`."""

    model_config = SettingsConfigDict(
        env_prefix="FACTORY_", env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    profile: Literal["local", "ci", "prod"] = Field("local", description="Deployment profile, for the record.")
    home: Path = Field(REPO_ROOT / ".factory", description="Folder holding all embedded state.")

    # Warehouse (DuckDB file, or a MotherDuck `md:` URI in production).
    warehouse: str = Field("", description="DuckDB database path or URI; default <home>/warehouse.duckdb.")
    landing_dir: Path | None = Field(None, description="Landing files root; default <home>/landing.")
    sources_dir: Path = Field(
        PACKAGE_DIR / "defs" / "ingestion" / "sources", description="Folder of source schema YAML files."
    )
    suites_dir: Path = Field(
        PACKAGE_DIR / "defs" / "contracts" / "suites", description="Folder of Great Expectations suites."
    )
    manifests_dir: Path = Field(
        PACKAGE_DIR / "defs" / "agents" / "manifests", description="Folder of agent manifests (one YAML per agent)."
    )
    evals_dir: Path = Field(
        REPO_ROOT / "evals", description="Evaluation suites (suites/<suite>.yaml) and their golden datasets."
    )
    user_sources_dir: Path | None = Field(
        None, description="Your own source declarations; a file here replaces the shipped one of the same name."
    )
    user_suites_dir: Path | None = Field(
        None, description="Your own suites; a file here replaces the shipped one of the same name."
    )
    user_models_dir: Path | None = Field(
        None, description="Your own classifier files (<name>.yaml); a file here replaces the shipped one of the same "
        "name, another name adds a classifier."
    )

    # Feast.
    feature_repo: Path = Field(REPO_ROOT / "feature_repo", description="The Feast repository.")
    feature_data_dir: Path | None = Field(None, description="Parquet feature tables; default <home>/features.")
    feast_registry: str = Field("", description="Feast registry path or SQL URL; default <home>/feast/registry.db.")
    feast_online_store: Literal["sqlite", "redis"] = "sqlite"
    feast_online_path: Path | None = Field(None, description="SQLite online store; default <home>/feast/online.db.")
    feast_redis_url: str = Field("", description="Redis connection string when the online store is redis.")

    # Tracking.
    mlflow_tracking_uri: str = Field("", description="MLflow URI; default sqlite:///<home>/mlflow/mlflow.db.")
    mlflow_artifact_root: str = Field("", description="Where MLflow stores model artifacts; default <home>/mlflow/artifacts.")

    # Agents and models.
    labels_dir: Path | None = Field(
        None, description="Labelled tickets (one JSONL per day: ticket_id and label columns) for training and "
        "accuracy; default <home>/demo_truth/tickets, which the demo writes.")
    model_dir: Path | None = Field(None, description="Where the local GGUF model is assembled; default <home>/models.")
    model_slots: int = Field(1, ge=1, description="Agent steps calling a model at once, across runs (Dagster pool "
                             "model_slots).")
    llm_threads: int = Field(2, ge=1, description="CPU threads of the local model.")
    llm_context_window: int = Field(2048, ge=256, description="Context tokens of the local model.")
    llm_usd_per_cpu_second: float = Field(0.00001, ge=0, description="Price of a CPU-second of the local model.")
    llm_prices: dict[str, list[float]] = Field(
        default_factory=dict, description="Remote model -> [USD per 1k prompt tokens, USD per 1k completion tokens].")
    response_cache: bool = Field(True, description="Reuse a model answer for the same model, prompt and input.")

    # Dagster instance.
    dagster_home: Path | None = Field(None, description="DAGSTER_HOME; default <home>/dagster.")
    dagster_postgres_url: str = Field("", description="Postgres URL for Dagster storage (production).")
    max_concurrent_runs: int = Field(2, ge=1, description="Runs the Dagster daemon executes at once (backfills).")
    executor: Literal["in_process", "multiprocess"] = Field(
        "in_process",
        description="How a run executes its steps: one process (no per-step imports of GX and Feast, best on "
        "one machine) or one process per step.",
    )

    # Demo source and default date range.
    start_date: date = Field(date(2026, 11, 1), description="First partition of the default date range.")
    end_date: date = Field(date(2026, 11, 7), description="Last partition of the default date range.")
    demo_seed: int = 7
    demo_defect_rate: float = Field(0.02, ge=0, le=1)
    demo_drift_date: date | None = Field(date(2026, 11, 6), description="Day the demo distributions shift.")
    demo_tickets_per_day: int = Field(150, ge=1)
    demo_customers: int = Field(400, ge=1)

    # Governance: the policy gate, kill switches, the review queue and the audit log.
    policies_dir: Path = Field(
        REPO_ROOT / "factory_pipelines" / "policies", description="Cedar schema, policy sets and gate.yaml."
    )
    kill_switches_file: Path | None = Field(
        None, description="Kill-switch journal (JSON lines); default <home>/governance/kill_switches.jsonl."
    )
    review_ttl_hours: float = Field(72.0, gt=0, description="Escalations not decided within this are denied.")
    audit_anchor: Path | None = Field(
        None, description="Last audit entry (seq and hash), to detect a truncated log; default <home>/governance/audit_head."
    )
    operator: str = Field(
        default_factory=lambda: _login_name(), description="Who runs the operator commands (eval, promote, rollback): "
        "the Cedar principal Operator, its role from policies/operators.yaml; default the login name.")

    # Alerts: every failed asset check becomes a row of alerts.check_failures; optionally POSTed to a webhook.
    alert_webhook_url: str = Field("", description="Where failed-check alerts are POSTed as JSON (http or https); "
                                   "empty: alerts are only recorded in the warehouse.")
    alert_webhook_secret: SecretStr | None = Field(
        None, description="Key of the HMAC-SHA256 signature of each body (header X-Factory-Signature: sha256=<hex>).")
    alert_webhook_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Timeout of one webhook POST.")
    alert_webhook_attempts: int = Field(3, ge=1, le=10, description="POSTs of one alert per sensor tick before it "
                                        "is left as failed (the next tick tries again).")

    # Drift: nightly per agent (drift/<agent>.yaml at the project root; lib/drift, defs/drift).
    drift_config_dir: Path = Field(REPO_ROOT / "drift", description="One drift/<agent>.yaml per agent judged nightly "
                                   "(windows, bounds, families); an agent without a file has no drift asset.")
    drift_dir: Path | None = Field(None, description="Where the nightly drift reports are written (<agent>/<day>.html); "
                                   "default <home>/drift.")
    drift_schedule_cron: str = Field("0 6 * * *", description="When each agent's nightly drift runs (cron, in "
                                     "drift_schedule_timezone), on the previous day's partition; on by default.")
    drift_schedule_timezone: str = Field("UTC", description="IANA time zone of drift_schedule_cron.")

    # Retention and PII minimization (lib/governance/retention.py, lib/governance/pii.py).
    retention_days: int = Field(90, ge=0, description="Days raw ticket text, prompts, model inputs and outputs, reply "
                                "bodies and traces are kept; then `factory purge` (and the retention job) deletes or "
                                "masks them. 0: keep forever.")
    pii_mask_remote: bool = Field(True, description="Mask emails, phones, cards and IBANs in what is sent to a remote "
                                  "model provider (the local model sees the raw text).")
    pii_mask_traces: bool = Field(True, description="Mask the same in the agents' trace payloads (span inputs and outputs).")

    # Feature freshness: features older than this are stale for agents.
    feature_ttl_days: int = Field(30, ge=1)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        home = self.home.expanduser().resolve()
        derived: dict[str, Any] = {
            "home": home,
            "warehouse": self.warehouse or str(home / "warehouse.duckdb"),
            "landing_dir": self.landing_dir or home / "landing",
            "feature_data_dir": self.feature_data_dir or home / "features",
            "feast_registry": self.feast_registry or str(home / "feast" / "registry.db"),
            "feast_online_path": self.feast_online_path or home / "feast" / "online.db",
            "mlflow_tracking_uri": self.mlflow_tracking_uri or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": self.mlflow_artifact_root or str(home / "mlflow" / "artifacts"),
            "labels_dir": self.labels_dir or home / "demo_truth" / "tickets",
            "model_dir": self.model_dir or home / "models",
            "dagster_home": self.dagster_home or home / "dagster",
            "kill_switches_file": self.kill_switches_file or home / "governance" / "kill_switches.jsonl",
            "audit_anchor": self.audit_anchor or home / "governance" / "audit_head",
            "drift_dir": self.drift_dir or home / "drift",
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)
        if self.start_date > self.end_date:
            raise ValueError(f"start_date {self.start_date} is after end_date {self.end_date}")
        if self.alert_webhook_url and not self.alert_webhook_url.startswith(("http://", "https://")):
            raise ValueError("alert_webhook_url must be an http:// or https:// URL")
        _check_schedule(self.drift_schedule_cron, self.drift_schedule_timezone)
        if self.feast_online_store == "redis" and not self.feast_redis_url:
            raise ValueError("feast_online_store=redis needs FACTORY_FEAST_REDIS_URL")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=_settings_file())
        return init_settings, env_settings, dotenv_settings, yaml_source

    @property
    def source_dirs(self) -> list[Path]:
        """Where source declarations are read, later folders overriding earlier ones by file name."""
        return [self.sources_dir, *([self.user_sources_dir] if self.user_sources_dir else [])]

    @property
    def suite_dirs(self) -> list[Path]:
        """Where contract suites are looked up, later folders overriding earlier ones by file name."""
        return [self.suites_dir, *([self.user_suites_dir] if self.user_suites_dir else [])]

    def secret(self, name: str) -> SecretStr | None:
        """The secret named `name` (an API key a manifest names by `api_key_env`): the environment variable, else
        the same name in the `.env` file. Read when asked, never at import, and wrapped so that printing or
        logging it shows `**********`."""
        value = os.environ.get(name)
        env_file = Path(str(self.model_config.get("env_file") or ".env"))
        if not value and env_file.is_file():
            from dotenv import dotenv_values

            value = dotenv_values(env_file).get(name)
        return SecretStr(value) if value else None

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment of a child process this one starts (the `feast` or Dagster CLIs): ours plus `extra`."""
        return {**os.environ, **extra}

    def ensure_dirs(self) -> None:
        """Create the local state folders the embedded profile writes into."""
        for path in (self.home, self.landing_dir, self.feature_data_dir, self.dagster_home):
            Path(path).mkdir(parents=True, exist_ok=True)
        if "://" not in self.feast_registry:
            Path(self.feast_registry).parent.mkdir(parents=True, exist_ok=True)
        Path(self.feast_online_path).parent.mkdir(parents=True, exist_ok=True)
        if self.mlflow_tracking_uri.startswith("sqlite:///"):
            Path(self.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if "://" not in self.warehouse and not self.warehouse.startswith("md:"):
            Path(self.warehouse).parent.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the env."""
    return Settings()


def turn_off_telemetry() -> None:
    """Set the opt-out variables of every library before any of them is imported."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def export_dagster_home(settings: Settings) -> None:
    """Point Dagster tools launched from this process at the factory's instance."""
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
