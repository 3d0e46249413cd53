"""Inbound email: customers' replies land on their refund request.

Every customer email of a request carries ``Reply-To: reply+<token>@PORTAL_INBOUND_DOMAIN``
(``portal.refunds.links``). A message reaches :func:`portal.inbound.receiving.receive` from
``portal mail receive`` (an MTA's pipe) or ``portal mail serve`` (LMTP/SMTP); it is matched by
its token (or by ``In-Reply-To``/``References`` naming one of our Message-IDs), trimmed of quoted
history (``trimming``), and its attachments go through the uploads' checks. No Flask here.
"""
