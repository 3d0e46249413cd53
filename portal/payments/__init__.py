"""Payment gateways: how a refund reaches the processor. No Flask here."""

from portal.payments.base import (
    Gateway,
    GatewayMisconfigured,
    GatewayRefund,
    GatewayUnavailable,
    RefundDeclined,
)
from portal.payments.manual import ManualGateway
from portal.payments.stripe_gateway import STRIPE_API_VERSION, StripeGateway

__all__ = [
    "STRIPE_API_VERSION",
    "Gateway",
    "GatewayMisconfigured",
    "GatewayRefund",
    "GatewayUnavailable",
    "ManualGateway",
    "RefundDeclined",
    "StripeGateway",
]
