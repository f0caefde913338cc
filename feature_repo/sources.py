"""Sources: the Parquet feature tables the factory's feature assets write, one file per day.

Paths are absolute and come from the factory settings (Feast reads relative paths against the
current directory).
"""

from feast import FileSource

from factory_pipelines.settings import get_settings

_features = get_settings().feature_data_dir

customer_daily_source = FileSource(
    name="customer_daily_source",
    path=str(_features / "customer_daily" / "*.parquet"),
    timestamp_field="event_timestamp",
    description="features.customer_daily: one row per customer per day, as of the end of that day.",
)

ticket_features_source = FileSource(
    name="ticket_features_source",
    path=str(_features / "ticket_features" / "*.parquet"),
    timestamp_field="event_timestamp",
    description="features.ticket_features: one row per ticket, stamped with its creation time.",
)
