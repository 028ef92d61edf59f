"""What a server allows: its configuration, genres, content rules, moderation and throttles."""

from storage.models import ContentRating, NarratorCadence, NarratorChoice

# Front-ends name ratings and cadences through the engine; they never import storage.
__all__ = ["ContentRating", "NarratorCadence", "NarratorChoice"]
