"""Stripe's webhook events coming in; what they do lives in ``portal.refunds.reconciliation``."""
