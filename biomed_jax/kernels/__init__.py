"""Kernels chosen by config (models/config.py), never by inspecting the running program:

  model.kernels    xla   plain jax and flax.nnx ops (models/layers.py): what GPUs and TPUs run, and what a
                         qwix-rewritten model (LoRA, int8, nf4) runs everywhere
                   cpu   biomed_jax/kernels/cpu: the same model rewritten for XLA:CPU
                   auto  cpu on a CPU backend, xla elsewhere
  model.attention  splash   kernels/splash.py, Pallas splash attention (auto on TPU)
                   cudnn    jax.nn.dot_product_attention's cuDNN flash attention (auto on GPU, 16-bit)
                   blocked  kernels/cpu/attention.py (auto with the cpu kernels)
                   xla      jax.nn.dot_product_attention in XLA ops (auto otherwise)

The resolved choice is written to the run's config.json ("resolved") and log.
"""
