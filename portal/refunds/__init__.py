"""Refund requests: the state machine and the services that move a request through it. No Flask here."""
