from __future__ import annotations

import torch

from engine.worker.model.loading import LoadedModel
from engine.worker.model.stopping import StopPolicy
from engine.worker.model.stopping_criteria import StopPolicyCriteria, cut_at_end_tokens


def encode(model: LoadedModel, text: str) -> list[int]:
    return list(model.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_cut_at_end_tokens_drops_everything_after_the_first_end_token() -> None:
    assert cut_at_end_tokens([4, 5, 0, 6, 0], {0}) == [4, 5]
    assert cut_at_end_tokens([4, 5], {0}) == [4, 5]


def test_rows_stop_individually_and_report_progress(tiny_model: LoadedModel) -> None:
    prompt = encode(tiny_model, "The")
    finished = encode(tiny_model, " The wind howled.\nMira:")
    running = encode(tiny_model, " The wind howled and the sea was calm")[: len(finished)]
    eos = tiny_model.tokenizer.eos_token_id
    rows = [prompt + finished, prompt + running]
    progress: list[tuple[int, str]] = []
    policy = StopPolicy(player_names=("Mira",))
    criteria = StopPolicyCriteria(
        tiny_model.tokenizer,
        len(prompt),
        [policy, policy],
        end_token_ids={eos},
        on_progress=lambda index, text: progress.append((index, text)),
        progress_every=1,
    )

    flags = criteria(torch.tensor(rows), None)  # type: ignore[arg-type]

    assert flags.tolist() == [True, False]
    assert progress == [(1, tiny_model.tokenizer.decode(running))]


def test_row_ended_by_eos_is_left_to_the_eos_criterion(tiny_model: LoadedModel) -> None:
    eos = tiny_model.tokenizer.eos_token_id
    criteria = StopPolicyCriteria(tiny_model.tokenizer, 1, [StopPolicy()], end_token_ids={eos})

    assert criteria(torch.tensor([[5, 6, eos]]), None).tolist() == [False]  # type: ignore[arg-type]
