"""The one error of the backup package."""


class BackupError(Exception):
    """A backup could not be made, read, verified or restored; the message is safe to show."""
