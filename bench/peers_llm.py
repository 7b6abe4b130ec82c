"""GPU peer of bench/src/bin/llm.rs: Hugging Face transformers with the same Llama shape
(TinyLlama's: 22 layers, hidden 2048, 32/4 heads, vocabulary 32000), random bfloat16 weights,
SDPA attention; and, where MLX's CUDA build imports (pip `mlx[cuda13]`), the same model in
mlx.nn as mlx-lm writes it (a preallocated KV cache written in place, mx.fast's RoPE, RMSNorm
and attention, each step's token fed to the next without a host read, steps queued with
async_eval). Prompt of 1024 tokens: tokens/s over the time to the first new token; then 128
greedy tokens with the KV cache: tokens/s after the first. Prints one JSON object."""
import json, time

from peers_common import run_peer

res = {}
try:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                      num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                      rms_norm_eps=1e-6, max_position_embeddings=4096)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    model.config._attn_implementation = "sdpa"
    prompt = torch.tensor([[(i * 7919) % 32000 for i in range(1024)]], device="cuda")
    with torch.inference_mode():
        # The warm-up takes the whole prompt, as umx's does: a prompt's first run at a length
        # pays for that length's first kernels (umx's figure included them until 2026-11-28).
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(prompt, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        torch.cuda.synchronize()
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=128, min_new_tokens=128, do_sample=False)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
    res["prefill/transformers"] = 1024 / t_first
    res["generate/transformers"] = 127 / max(total - t_first, 1e-9)
except Exception as e:
    res["transformers:error"] = repr(e)[:300]


def bench_mlx():
    import mlx.core as mx
    import mlx.nn as nn

    layers, hidden, inter, heads, kv_heads, vocab = 22, 2048, 5632, 32, 4, 32000
    hd = hidden // heads

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(hidden, heads * hd, bias=False)
            self.k_proj = nn.Linear(hidden, kv_heads * hd, bias=False)
            self.v_proj = nn.Linear(hidden, kv_heads * hd, bias=False)
            self.o_proj = nn.Linear(heads * hd, hidden, bias=False)

        def __call__(self, x, cache, offset):
            B, T, _ = x.shape
            q = self.q_proj(x).reshape(B, T, heads, hd).transpose(0, 2, 1, 3)
            k = self.k_proj(x).reshape(B, T, kv_heads, hd).transpose(0, 2, 1, 3)
            v = self.v_proj(x).reshape(B, T, kv_heads, hd).transpose(0, 2, 1, 3)
            q = mx.fast.rope(q, hd, traditional=False, base=10000.0, scale=1.0, offset=offset)
            k = mx.fast.rope(k, hd, traditional=False, base=10000.0, scale=1.0, offset=offset)
            cache[0][..., offset:offset + T, :] = k
            cache[1][..., offset:offset + T, :] = v
            keys, values = cache[0][..., :offset + T, :], cache[1][..., :offset + T, :]
            o = mx.fast.scaled_dot_product_attention(q, keys, values, scale=hd ** -0.5,
                                                     mask="causal" if T > 1 else None)
            return self.o_proj(o.transpose(0, 2, 1, 3).reshape(B, T, -1))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = nn.RMSNorm(hidden, eps=1e-6)
            self.self_attn = Attention()
            self.post_attention_layernorm = nn.RMSNorm(hidden, eps=1e-6)
            self.gate_proj = nn.Linear(hidden, inter, bias=False)
            self.up_proj = nn.Linear(hidden, inter, bias=False)
            self.down_proj = nn.Linear(inter, hidden, bias=False)

        def __call__(self, x, cache, offset):
            h = x + self.self_attn(self.input_layernorm(x), cache, offset)
            y = self.post_attention_layernorm(h)
            return h + self.down_proj(nn.silu(self.gate_proj(y)) * self.up_proj(y))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, hidden)
            self.layers = [Block() for _ in range(layers)]
            self.norm = nn.RMSNorm(hidden, eps=1e-6)
            self.lm_head = nn.Linear(hidden, vocab, bias=False)

        def __call__(self, tokens, caches, offset):
            x = self.embed_tokens(tokens)
            for layer, cache in zip(self.layers, caches):
                x = layer(x, cache, offset)
            return self.lm_head(self.norm(x))

    mx.random.seed(0)
    model = Llama()
    model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    prompt = mx.array([[(i * 7919) % 32000 for i in range(1024)]])

    def generate(n_prompt, n_new):
        caches = [[mx.zeros((1, kv_heads, n_prompt + n_new, hd), dtype=mx.bfloat16) for _ in range(2)]
                  for _ in range(layers)]
        mx.eval(caches)
        t0 = time.perf_counter()
        y = mx.argmax(model(prompt[:, :n_prompt], caches, 0)[:, -1, :], axis=-1)
        mx.eval(y)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n_new - 1):
            y = mx.argmax(model(y[:, None], caches, n_prompt + i)[:, -1, :], axis=-1)
            mx.async_eval(y)
        mx.eval(y)
        return t_first, time.perf_counter() - t0

    # The warm-up takes the prompt's length too (MLX builds its kernels for each shape).
    generate(1024, 8)
    t_first, t_rest = generate(1024, 128)
    res["prefill/mlx"] = 1024 / t_first
    res["generate/mlx"] = 127 / max(t_rest, 1e-9)


run_peer(res, "mlx", bench_mlx, "mlx.core")
print(json.dumps(res))
