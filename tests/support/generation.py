"""Requests and settings shared by the generator tests (tiny random model)."""

from __future__ import annotations

from engine.protocol.sampling import SamplingSettings
from engine.worker.model.generator import GenerationRequest
from engine.worker.model.stopping import StopPolicy

# The tiny model is random: let it write on instead of stopping at chance "Name:" lines.
OPEN_ENDED = StopPolicy(max_paragraphs=5, markers=(), stop_at_any_speaker=False)
GREEDY = SamplingSettings(
    temperature=0, max_new_tokens=12, repetition_penalty=1.0, no_repeat_ngram_size=0
)
SAMPLED = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=16)
PROMPTS = [
    "The dragon",
    "Mira opened the creaking door of the lighthouse and the wind",
    "A quiet village waited by the river; the",
]


def request(
    request_id: str,
    prompt: str,
    sampling: SamplingSettings = GREEDY,
    banned: tuple[str, ...] = (),
) -> GenerationRequest:
    return GenerationRequest(request_id, prompt, sampling, OPEN_ENDED, banned)
