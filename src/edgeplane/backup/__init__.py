"""Backups of the control plane: made on a schedule, encrypted, checksummed, stored at several
targets, verified by restoring them, and restored with ``edgeplane restore``
(docs/disaster-recovery.md)."""
