"""Feature views: <entity>_<grain>_<topic>, every field typed and described."""

from datetime import timedelta

from entities import customer, ticket
from feast import FeatureView, Field
from feast.types import Bool, Float64, Int64, String
from sources import customer_daily_source, ticket_features_source

customer_daily_profile = FeatureView(
    name="customer_daily_profile",
    entities=[customer],
    ttl=timedelta(days=7),
    source=customer_daily_source,
    online=True,
    description="Who the customer is and how they bought and complained lately, as of each day's end.",
    tags={"owner": "data-platform", "grain": "customer x day"},
    schema=[
        Field(name="plan", dtype=String, description="Subscription plan (free, basic, pro, enterprise)."),
        Field(name="region", dtype=String, description="Sales region."),
        Field(name="tenure_days", dtype=Int64, description="Days since signup."),
        Field(name="lifetime_spend", dtype=Float64, description="CRM lifetime spend in USD."),
        Field(name="orders_30d", dtype=Int64, description="Orders placed in the last 30 days."),
        Field(name="spend_30d", dtype=Float64, description="USD spent on orders placed in the last 30 days."),
        Field(name="spend_90d", dtype=Float64, description="USD spent on orders placed in the last 90 days."),
        Field(name="refunds_90d", dtype=Int64, description="Orders refunded in the last 90 days."),
        Field(name="refund_amount_90d", dtype=Float64, description="USD refunded in the last 90 days."),
        Field(name="tickets_7d", dtype=Int64, description="Tickets opened in the last 7 days."),
        Field(name="tickets_30d", dtype=Int64, description="Tickets opened in the last 30 days."),
    ],
)

ticket_text_stats = FeatureView(
    name="ticket_text_stats",
    entities=[ticket],
    ttl=timedelta(days=30),
    source=ticket_features_source,
    online=True,
    description="Cheap signals computed from a ticket's text and metadata.",
    tags={"owner": "data-platform", "grain": "ticket"},
    schema=[
        Field(name="channel", dtype=String, description="Channel the ticket came in on."),
        Field(name="body_chars", dtype=Int64, description="Length of the body in characters."),
        Field(name="subject_chars", dtype=Int64, description="Length of the subject in characters."),
        Field(name="hour_of_day", dtype=Int64, description="UTC hour the ticket was opened."),
        Field(name="day_of_week", dtype=Int64, description="ISO day of week (1 = Monday)."),
        Field(name="exclamations", dtype=Int64, description="Number of '!' in subject and body."),
        Field(name="uppercase_ratio", dtype=Float64, description="Share of letters in upper case."),
        Field(name="sentiment", dtype=Float64, description="Lexicon sentiment proxy in [-1, 1]."),
        Field(name="mentions_refund", dtype=Bool, description="Text mentions a refund or money back."),
        Field(name="mentions_amount", dtype=Bool, description="Text contains a money amount."),
        Field(name="has_order_ref", dtype=Bool, description="An order id is given or written in the text."),
        Field(name="is_follow_up", dtype=Bool, description="The ticket follows up an earlier one."),
    ],
)
