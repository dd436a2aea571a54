"""Baseline methods. They register through the public ``egobench.methods``
entry points (see pyproject.toml), exactly as an outside package would."""
