"""Notification senders of the alerting system: channels, messages, signing, delivery, retry."""
