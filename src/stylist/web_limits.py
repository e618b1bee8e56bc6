"""What one ``stylist web`` server allows a visitor.

Apart from :mod:`stylist.web` so that the CLI can build the flags of ``stylist web`` from these
fields (defaults in one place) without importing Gradio, an optional dependency.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebLimits:
    """Every limit of ``stylist web``; the CLI builds its flags from these fields."""

    # Largest upload in MB; Gradio refuses a bigger file before storing it.
    max_upload_mb: int = 20
    # Most pixels in an input image, checked before it is decoded (a guard against decompression bombs).
    max_pixels: int = 40_000_000
    # Largest result a visitor may ask for (longest side, px): the end of the size slider.
    max_size: int = 1024
    # Most iterations per optimisation: the end of the iterations slider.
    max_iterations: int = 1000
    # Seconds of an uploaded film that the video tab stylises (its beginning); the rest is left out.
    max_video_seconds: float = 10.0
    # Runs that may wait beyond the running ones; later visitors are told the queue is full.
    queue_size: int = 20
    # Runs at once (on a CPU one run already uses every core); the rest wait, told their place in line.
    concurrency: int = 1
    # Results per browser tab kept in the compare view.
    keep_results: int = 6
    # Hours a tab's results are kept after its last use.
    session_hours: float = 6.0
    # Most tabs whose results are kept at once; a new one's results replace the least recently used tab's.
    max_sessions: int = 100

    def validate(self) -> None:
        """Raise ConfigError (one line) for a limit the app cannot use."""
        from .errors import ConfigError

        names = ("max_upload_mb", "max_pixels", "max_iterations", "queue_size", "concurrency", "keep_results")
        for name in (*names, "max_sessions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}")
        if self.max_size < 64:
            raise ConfigError(f"--max-size must be at least 64 pixels; got {self.max_size}")
        if self.max_iterations < 10:
            raise ConfigError(f"--max-iterations must be at least 10; got {self.max_iterations}")
        if not (self.max_video_seconds > 0 and self.max_video_seconds != float("inf")):
            raise ConfigError(f"--max-video-seconds must be a positive number of seconds; got {self.max_video_seconds}")
        if not (self.session_hours > 0 and self.session_hours != float("inf")):
            raise ConfigError(f"--session-hours must be a positive number of hours; got {self.session_hours}")
