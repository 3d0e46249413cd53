"""What staff can ask a customer: the standard questions and the documents, by stable key."""

from portal.core.markers import N_

QUESTIONS = {
    "what_went_wrong": N_("What went wrong?"),
    "how_long_used": N_("How long have you used the product?"),
    "tried_help": N_("Have you tried our help resources or contacted support?"),
}
DOCUMENTS = {
    "proof_of_purchase": N_("Proof of purchase (an invoice or receipt)"),
    "bank_statement": N_("A bank statement showing the charge"),
    "screenshot": N_("A screenshot of the problem"),
}
LABELS = {**QUESTIONS, **DOCUMENTS}


def item_label(item: dict[str, str]) -> str:
    """The English text of an item (a msgid for the standard ones, the agent's words otherwise)."""
    return LABELS.get(item.get("key", ""), "") or item.get("text", "")
