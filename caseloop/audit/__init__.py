"""The tamper-evident audit trail: an append-only, per-organisation hash chain of events."""
