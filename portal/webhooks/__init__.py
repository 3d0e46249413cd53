"""Webhooks both ways: Stripe's events coming in (stripe_events.py, views.py) and our own state
changes going out to subscribers (outgoing.py)."""
