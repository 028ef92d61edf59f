"""Safety and moderation: content filters per rating, blocked words, rate limits."""

from engine.safety.blocked_words import validate_blocked_word
from engine.safety.classifier import CLASSIFIER_THRESHOLDS, ProfanityClassifier
from engine.safety.filters import strip_control_characters
from engine.safety.flood import FloodLimits
from engine.safety.normalization import normalize
from engine.safety.policy import ContentPolicy
from engine.safety.rate_limit import RateLimiter
from engine.safety.verdict import TextKind, Verdict
from engine.safety.wordlists import builtin_words

__all__ = [
    "CLASSIFIER_THRESHOLDS",
    "ContentPolicy",
    "FloodLimits",
    "ProfanityClassifier",
    "RateLimiter",
    "TextKind",
    "Verdict",
    "builtin_words",
    "normalize",
    "strip_control_characters",
    "validate_blocked_word",
]
