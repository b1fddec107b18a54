"""The pure model: vocabulary, settings, topology, schedules, evidence and records (no I/O, no root)."""
