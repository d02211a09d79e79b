"""A tiny character-level tokenizer built offline, with a ChatML chat template and the special tokens R1-style
training uses. Every printable ASCII character is one token, so any text round-trips, and a vocabulary of ~110
keeps tiny models tiny. It is a real `PreTrainedTokenizerFast`: it saves and loads like any Hugging Face tokenizer.
"""

from __future__ import annotations

import string
from typing import Any

SPECIAL = [
    "<pad>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
]
CHARS = [c for c in string.printable if c not in "\x0b\x0c\r"]  # letters, digits, punctuation, space, \t, \n
UNKNOWN = "?"  # characters outside the alphabet become this

# ChatML, as Qwen2.5 uses it: the generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_tokenizer() -> Any:
    """A character-level `PreTrainedTokenizerFast` with ChatML and <think>/<answer> tokens (pad, eos set)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + CHARS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN))
    core.normalizer = normalizers.Replace("\r", "")
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")  # every character is a token
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<|endoftext|>",
        unk_token=UNKNOWN,
        additional_special_tokens=SPECIAL[2:],
        padding_side="left",  # generation pads on the left (an init argument, so it is saved)
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
