"""The diffusion machinery LEGO and the baselines share: samplers, tiny models, the finetuning loop.

Modules by role: ``scheduler`` (k-diffusion's Euler ancestral, the protocol's sampler table),
``noise`` (the training forward process), ``unet`` (input widening), ``bundle`` (the models of a
run), ``data`` (training pairs and their order), ``loss``, ``ema``, ``checkpoints``, ``loop`` (the
accelerate optimization loop), ``training`` (diffusion finetuning on that loop), ``validation``,
``tiny`` (the tiny zoo's Stable Diffusion parts), ``folders`` and ``feedback`` (CLI helpers).
Nothing here imports ``lego`` or ``baselines``; torch and diffusers load with the modules that need them.
"""
