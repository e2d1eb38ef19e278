"""noteexec: executable study notes, checked against what they document."""

__version__ = "0.1.0"
