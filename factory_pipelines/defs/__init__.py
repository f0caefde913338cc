"""Dagster definitions of the factory, one folder per domain; `factory_pipelines.definitions` composes them."""
