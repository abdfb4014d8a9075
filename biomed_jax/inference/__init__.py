"""Autoregressive generation: jitted prefill + decode over a static KV cache, samplers, text helpers."""
