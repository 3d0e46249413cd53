"""Marks a message for extraction without translating it.

Domain modules must not import Flask, yet their messages reach customers. They mark text
with ``N_`` (Babel extracts the keyword); the web layer translates it when it renders, in
the reader's locale. A message whose wording depends on a number is marked with ``Nn_``,
both English forms together, so each language gets all of its plural forms (``ngettext``).
"""

from typing import NamedTuple


def N_(message: str) -> str:
    return message


class Plural(NamedTuple):
    """A message in a singular and a plural form; the number in one of its parameters chooses."""

    singular: str
    plural: str
    param: str = "count"  # the name of the parameter holding the number


def Nn_(singular: str, plural: str, param: str = "count") -> Plural:
    return Plural(singular, plural, param)
