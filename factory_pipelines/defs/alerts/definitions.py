"""The alerts domain: `check_alerts_sensor`, which turns every failed asset check of the factory into an alert row
(and an optional webhook POST). It defines no asset: it watches the instance, not the graph, so it comes last in
the composition and needs nothing from `upstream`."""

import dagster as dg

from factory_pipelines.defs.alerts.sensors import check_alerts_sensor, webhook_of
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """Always the sensor: any check of any run counts, drift checks added later included."""
    return dg.Definitions(sensors=[check_alerts_sensor(webhook_of(settings))])
