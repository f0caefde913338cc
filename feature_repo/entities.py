"""Entities: one per join key."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A customer of the shop (CRM id C-nnnnn).",
)

ticket = Entity(
    name="ticket",
    join_keys=["ticket_id"],
    value_type=ValueType.STRING,
    description="A support ticket (helpdesk id).",
)
