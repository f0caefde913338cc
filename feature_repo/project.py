"""The Feast project: one per factory (its name is `project` in feature_store.yaml)."""

from feast import Project

ai_factory = Project(
    name="ai_factory",
    description="Features of AI Factory's agents: customers and tickets of the support workflow.",
    tags={"owner": "ml-platform"},
)
