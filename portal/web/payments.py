"""The payment gateway this deployment uses, built from the settings."""

from __future__ import annotations

from decimal import Decimal

from flask import current_app

from portal.payments import ManualGateway, StripeGateway
from portal.payments.paddle_gateway import PaddleGateway
from portal.refunds.payouts import Fees


def current_gateway():
    config = current_app.config
    if config["PAYMENT_GATEWAY"] == "stripe":
        return StripeGateway(
            config["STRIPE_API_KEY"],
            api_base=config.get("STRIPE_API_BASE"),
            timeout=float(config["STRIPE_TIMEOUT"]),
            max_network_retries=int(config["STRIPE_MAX_NETWORK_RETRIES"]),
            api_version=str(config["STRIPE_API_VERSION"]),
        )
    if config["PAYMENT_GATEWAY"] == "paddle":
        return PaddleGateway(
            config["PADDLE_API_KEY"], api_base=config.get("PADDLE_API_BASE"), timeout=float(config["PADDLE_TIMEOUT"])
        )
    return ManualGateway()


def stripe_livemode() -> bool:
    """Whether the configured key is a live one: Stripe's events must come from the same mode."""
    return str(current_app.config.get("STRIPE_API_KEY") or "").startswith(("sk_live_", "rk_live_"))


def current_fees() -> Fees:
    return Fees(
        percent=Decimal(str(current_app.config["PROCESSOR_FEE_PERCENT"])),
        fixed_minor=int(current_app.config["PROCESSOR_FEE_FIXED_MINOR"]),
    )
