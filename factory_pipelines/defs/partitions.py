"""The daily partitions every dated asset shares: one partition per landing day."""

import dagster as dg

from factory_pipelines.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Days from the configured start date up to today (end_offset=1 includes today)."""
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=1, timezone="UTC")
