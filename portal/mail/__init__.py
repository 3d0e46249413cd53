"""Email: the transactional outbox and (in the email kit) rendering and delivery."""
