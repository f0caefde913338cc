"""Feature services: <consumer>_v<N>, what each consumer reads."""

from feast import FeatureService
from feature_views import customer_daily_profile, ticket_text_stats

support_agent_v1 = FeatureService(
    name="support_agent_v1",
    features=[customer_daily_profile, ticket_text_stats],
    description="Everything the support-triage agent reads about a ticket and its customer.",
    tags={"owner": "ml-platform"},
)
