"""Payment gateways: how a refund reaches the processor. No Flask here."""
from portal.payments.base import Gateway, GatewayRefund, GatewayUnavailable, RefundDeclined
from portal.payments.manual import ManualGateway
from portal.payments.stripe_gateway import StripeGateway

__all__ = ["Gateway", "GatewayRefund", "GatewayUnavailable", "ManualGateway", "RefundDeclined", "StripeGateway"]
