"""A critic for PPO: a causal LM's backbone with a scalar value head, V at every position.

Built from the policy's starting checkpoint (its `lm_head` dropped), as OpenRLHF and verl build the critic when no
reward model is given; the head is a fresh `Linear(hidden, 1)`. Saved as a directory the backbone's own
`save_pretrained` writes (config.json + model.safetensors, loadable with `AutoModel`) plus `value_head.safetensors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEAD_FILE = "value_head.safetensors"


class ValueModel(nn.Module):
    def __init__(self, backbone: Any, *, seed: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        first = next(backbone.parameters())
        self.value_head = nn.Linear(hidden, 1, device=first.device, dtype=first.dtype)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # OpenRLHF's init: std 1/(hidden + 1), zero bias
            weight = torch.randn(self.value_head.weight.shape, generator=generator) / (hidden + 1)
            self.value_head.weight.copy_(weight)
            self.value_head.bias.zero_()

    @classmethod
    def from_causal_lm(cls, model: Any, *, seed: int = 0) -> ValueModel:
        """A critic over `model`'s backbone (shared: pass a copy to keep the LM)."""
        return cls(model.get_decoder(), seed=seed)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> ValueModel:
        """A critic saved by `save_pretrained`, its parameters in `dtype`."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        path = Path(path)
        if not (path / HEAD_FILE).is_file():
            raise FileNotFoundError(f"{path}: no {HEAD_FILE}; not a critic saved by rlvr")
        from rlvr.models.checkpoint import quiet_loading

        with quiet_loading():
            backbone = AutoModel.from_pretrained(path, dtype=dtype, local_files_only=True).to(device)
        critic = cls(backbone)
        critic.value_head.load_state_dict(load_file(path / HEAD_FILE, device=str(device)))
        return critic

    def save_pretrained(
        self, path: str | Path, *, state_dict: dict[str, Tensor] | None = None, **kwargs: Any
    ) -> None:
        """The backbone in its own format and the head beside it; `state_dict`: this module's weights to write
        instead of its own (a sharded critic's gathered ones)."""
        from safetensors.torch import save_file

        path = Path(path)
        head = {k: v for k, v in self.value_head.state_dict().items()}
        backbone = None
        if state_dict is not None:
            backbone = {
                k.removeprefix("backbone."): v for k, v in state_dict.items() if k.startswith("backbone.")
            }
            head = {
                k.removeprefix("value_head."): v for k, v in state_dict.items() if k.startswith("value_head.")
            }
        self.backbone.save_pretrained(path, state_dict=backbone, **kwargs)
        save_file({k: v.contiguous() for k, v in head.items()}, path / HEAD_FILE)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, T) float32: out[b, t] = V of the state *before* token t (the prefix t' < t), the value of the
        state in which token t was chosen; out[:, 0] = 0. Aligned like `token_logprobs`, so a completion mask
        over `input_ids` selects the values of the completion's actions."""
        from rlvr.models.logprobs import padded_inputs

        positions = None
        if attention_mask is not None:
            attention_mask, positions = padded_inputs(attention_mask)
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False
        ).last_hidden_state  # (B, T, H)
        values = self.value_head(hidden).squeeze(-1).float()  # (B, T) V after token t
        return F.pad(values[:, :-1], (1, 0))  # (B, T)
