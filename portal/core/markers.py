"""Marks a message for extraction without translating it.

Domain modules must not import Flask, yet their messages reach customers. They mark text
with ``N_`` (Babel extracts the keyword); the web layer translates it when it renders, in
the reader's locale.
"""


def N_(message: str) -> str:
    return message
