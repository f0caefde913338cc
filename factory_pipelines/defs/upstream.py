"""What the domains before this one defined: the one thing a domain builder is given besides the settings.

The root builds the domains in layer order and hands each `build(settings, upstream)` the merged definitions
of the domains before it. A domain decides from them what it can define (staging tables for the raw tables
that exist, features for the staging tables, agents for the feeds their tools need), so no domain decision
is left to the root.
"""

from __future__ import annotations

import dagster as dg


def asset_keys(upstream: dg.Definitions, layer: str | None = None) -> list[dg.AssetKey]:
    """Keys of the assets in `upstream` (those under `layer/` only, when given), in definition order."""
    keys = []
    for asset in upstream.assets or []:
        for key in asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key]:
            if layer is None or key.path[0] == layer:
                keys.append(key)
    return keys


def names(upstream: dg.Definitions, layer: str) -> list[str]:
    """`<name>` of every asset `<layer>/<name>` in `upstream`: `names(upstream, "staging")` are the fed tables."""
    return [key.path[-1] for key in asset_keys(upstream, layer)]


def check_keys(upstream: dg.Definitions) -> list[dg.AssetCheckKey]:
    """Keys of the asset checks in `upstream`, in definition order."""
    return [key for checks in upstream.asset_checks or [] for key in checks.check_keys]
