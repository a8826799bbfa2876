"""A tiny causal language model built on the spot, for demos, tests and benchmarks.

Nothing is downloaded: the tokenizer is a byte-level BPE trained with the ``tokenizers``
library on the texts given, the model a two-layer Llama with a 32-wide hidden state. It
trains a step in milliseconds on a CPU, which is what a demo of the workflow needs; it
learns nothing useful.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def build_tiny_model(
    path: Path, texts: Iterable[str], *, chat_template: bool = True, vocab_size: int = 320,
    seed: int = 0,
) -> Path:
    """Write config, weights and tokenizer of a fresh tiny Llama to ``path``; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([*texts, "user", "assistant", "system"], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>",
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    path = Path(path)
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path
