"""Broadcast captioning dashboard: WhisperX -> CEA-608 captions -> captioned video."""

__version__ = "0.1.0"
