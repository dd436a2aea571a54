"""Today's image editors as egobench methods: a generic diffusers editing method and presets."""
