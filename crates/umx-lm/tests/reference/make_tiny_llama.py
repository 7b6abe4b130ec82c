"""Builds tiny random Llama models with Hugging Face transformers and writes what umx-lm's
tests compare against: each model directory (config.json + model.safetensors, float32) and
reference.json beside them (the logits of a fixed prompt and its greedy continuation). The
first model also gets a byte-level tokenizer.json (256 tokens, the model's vocabulary) and the
ids it gives a test text.

Run from anywhere (needs torch, transformers, safetensors):
    python crates/umx-lm/tests/reference/make_tiny_llama.py
The outputs are committed under crates/umx-lm/tests/data/; rerunning overwrites them.
"""
import json
import math
import os

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

PROMPT = [1, 17, 42, 99, 3, 250, 7, 128, 64, 5, 200, 33]
GREEDY_TOKENS = 16

VARIANTS = {
    # Grouped-query attention (4 query heads share 2 key/value heads), untied output.
    "tiny_llama": dict(
        hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, rope_theta=10000.0, rms_norm_eps=1e-5,
        max_position_embeddings=128, tie_word_embeddings=False,
    ),
    # Tied embeddings, an explicit head_dim (32, not 64 / 4), one key/value head, and Llama 3
    # rotary scaling with a short original context so all three frequency bands occur.
    "tiny_llama3_tied": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=32, vocab_size=256, rope_theta=10000.0,
        rms_norm_eps=1e-5, max_position_embeddings=128, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=16),
    ),
}


def randomize(model, seed, embed_std):
    """Weights large enough that the logits differ clearly between tokens (Hugging Face's
    own initialisation, std 0.02, gives nearly uniform logits). A tied model gets a smaller
    embedding: with std 1 each token's own row dominates its logits and greedy decoding only
    repeats the last prompt token."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(embed_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))


TOKENIZER_TEXT = "Shall I compare thee to a summer's day?\n  Caf\u00e9 \u2014 na\u00efve, 1609."


def write_tokenizer(out):
    """A GPT-2-style byte-level tokenizer with no merges: 256 tokens, one per byte, split by
    the byte-level regex (which needs look-ahead)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.save(os.path.join(out, "tokenizer.json"))
    ids = tok.encode(TOKENIZER_TEXT).ids
    assert tok.decode(ids) == TOKENIZER_TEXT
    return {"text": TOKENIZER_TEXT, "ids": ids}


def build(name, kwargs, seed):
    torch.manual_seed(seed)
    config = LlamaConfig(**kwargs, attn_implementation="eager")
    model = LlamaForCausalLM(config).float().eval()
    randomize(model, seed, 0.1 if kwargs["tie_word_embeddings"] else 1.0)
    out = os.path.join(DATA, name)
    os.makedirs(out, exist_ok=True)
    try:
        model.save_pretrained(out, safe_serialization=True)
    except TypeError:  # transformers 5 always writes safetensors
        model.save_pretrained(out)
    for extra in ("generation_config.json",):
        path = os.path.join(out, extra)
        if os.path.exists(path):
            os.remove(path)

    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
        seq = list(PROMPT)
        for _ in range(GREEDY_TOKENS):
            nxt = model(torch.tensor([seq])).logits[0, -1].argmax().item()
            seq.append(int(nxt))
    ref = {
        "prompt": PROMPT,
        "logits": [[float(v) for v in row] for row in logits.tolist()],
        "greedy": seq[len(PROMPT):],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if name == "tiny_llama":
        ref["tokenizer"] = write_tokenizer(out)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"model.safetensors {size} bytes, greedy {ref['greedy']}")


if __name__ == "__main__":
    for i, (name, kwargs) in enumerate(VARIANTS.items()):
        build(name, kwargs, seed=1234 + i)
