"""Event contracts and messaging plumbing shared by every Clientela service.

Small on purpose: the versioned envelope and event schemas (``envelope``, ``contracts``),
the transactional outbox and its relay (``database``, ``outbox``), the idempotent consumer
with delayed retry and dead-lettering (``consumer``), and the queue topology (``topology``).
Services import this package; they never import each other.
"""
