"""GPU peer of bench/src/bin/llm.rs: Hugging Face transformers with the same Llama shape
(TinyLlama's: 22 layers, hidden 2048, 32/4 heads, vocabulary 32000), random bfloat16 weights,
SDPA attention. Prompt of 1024 tokens: tokens/s over the time to the first new token; then
128 greedy tokens with the KV cache: tokens/s after the first. Prints one JSON object."""
import json, time

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
        model.generate(prompt[:, :64], max_new_tokens=8, min_new_tokens=8, do_sample=False)
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
print(json.dumps(res))
