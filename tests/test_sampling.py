"""The fast engine's token draw (`rlvr.rollout.fast.sample`): the top-p nucleus, and its CPU shortcut through the most
likely candidates, which must draw exactly what sorting the whole vocabulary draws."""

import torch

from rlvr.rollout import fast
from rlvr.rollout.fast import NUCLEUS_CANDIDATES, nucleus, sample
from rlvr.rollout.types import SamplingParams

V = 4 * NUCLEUS_CANDIDATES


def mixed_probs() -> torch.Tensor:
    """(6, V): peaked rows (the nucleus inside the candidates) and flat ones (outside: the sorted fallback)."""
    torch.manual_seed(0)
    logits = torch.randn(6, V)
    logits[:3] *= 12  # peaked
    logits[3:] *= 0.1  # nearly uniform: top_p 0.9 needs ~90% of the vocabulary
    return logits.softmax(dim=-1)


def sorted_nucleus(probs: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    """The reference: sort the whole vocabulary, keep the prefix whose mass before each token is under top_p."""
    ranked, order = probs.sort(dim=-1, descending=True)
    kept = ranked.masked_fill(ranked.cumsum(dim=-1) - ranked >= top_p, 0)
    cdf = kept.cumsum(dim=-1)
    return order.gather(-1, torch.searchsorted(cdf, u * cdf[:, -1:], right=True))


def test_the_candidate_shortcut_draws_what_a_full_sort_draws():
    probs = mixed_probs()
    generator = torch.Generator().manual_seed(1)
    for _ in range(200):
        u = torch.rand((probs.shape[0], 1), generator=generator)
        assert torch.equal(nucleus(probs, 0.9, u), sorted_nucleus(probs, 0.9, u))


def test_both_paths_are_taken(monkeypatch):
    """The equality above covers the shortcut and the fallback: peaked rows stay inside the candidates."""
    seen = []
    real = fast._draw_ranked

    def spy(ranked, order, top_p, u):
        tokens, inside = real(ranked, order, top_p, u)
        seen.append((ranked.shape, inside.tolist()))
        return tokens, inside

    monkeypatch.setattr(fast, "_draw_ranked", spy)
    nucleus(mixed_probs(), 0.9, torch.full((6, 1), 0.5))
    assert seen[0] == ((6, NUCLEUS_CANDIDATES), [True] * 3 + [False] * 3)
    assert seen[1][0] == (3, V)  # the flat rows, sorted


def test_draws_follow_the_renormalized_nucleus():
    """Frequencies over 20,000 draws match p / mass-of-the-nucleus; nothing outside it is ever drawn."""
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05] + [0.0] * (V - 4)])
    params = SamplingParams(temperature=1.0, top_p=0.75)  # mass before token 2 is 0.8: kept are 0 and 1
    generator = torch.Generator().manual_seed(2)
    logits = probs.clamp(min=1e-30).log().expand(20_000, V).contiguous()
    tokens, logps = sample(logits, params, generator)
    counts = torch.bincount(tokens, minlength=V).float() / len(tokens)
    assert counts[2:].sum() == 0
    assert abs(counts[0].item() - 0.625) < 0.015 and abs(counts[1].item() - 0.375) < 0.015
    assert torch.allclose(logps, probs[0, tokens].log())  # the untruncated policy's log-probs
