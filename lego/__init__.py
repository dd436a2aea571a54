"""The LEGO reference model (visual LLM + latent diffusion).

Registered as a method through the ``egobench.methods`` entry points once its
pipeline lands (see the LEGO issue); nothing here is imported by egobench.
"""
