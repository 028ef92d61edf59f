"""Sampling settings for the narrator, validated and mapped to ``generate()`` arguments."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class SamplingSettings(BaseModel):
    """Describe how the narrator picks tokens; equal settings can share one batch."""

    # frozen makes the model hashable, so the generator can group jobs by settings
    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(
        0.8, ge=0.0, le=2.0, description="Randomness of sampling; 0 means greedy decoding"
    )
    top_k: int = Field(
        40, ge=0, le=200, description="Sample only from the k likeliest tokens; 0 disables"
    )
    top_p: float = Field(
        0.95,
        ge=0.05,
        le=1.0,
        description="Sample from the smallest set of tokens with this total probability",
    )
    repetition_penalty: float = Field(
        1.1, ge=1.0, le=2.0, description="Penalty for tokens already in the text; 1 disables"
    )
    no_repeat_ngram_size: int = Field(
        3, ge=0, le=10, description="Never repeat an n-gram of this size; 0 disables"
    )
    max_new_tokens: int = Field(
        120, ge=8, le=512, description="Upper bound on tokens generated for one narrator turn"
    )
    num_beams: int = Field(
        1, ge=1, le=4, description="Beam search width; 1 means sampling or greedy decoding"
    )
    max_paragraphs: int = Field(
        2, ge=1, le=5, description="Stop after this many blank-line separated paragraphs"
    )
    max_sentences: int = Field(
        4, ge=1, le=12, description="Stop after this many sentences (the passage's length)"
    )

    @property
    def is_greedy(self) -> bool:
        """Return whether tokens are picked deterministically (no sampling)."""
        return self.temperature == 0.0 or self.num_beams > 1

    def to_generate_kwargs(self) -> dict[str, Any]:
        """Return the matching keyword arguments for transformers' ``generate()``."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "num_beams": self.num_beams,
        }
        if self.num_beams > 1:
            # Plain beam search: sampling flags would only trigger conflict warnings.
            kwargs.update(do_sample=False, early_stopping=True)
        elif self.temperature == 0.0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(
                do_sample=True,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
            )
        return kwargs
