"""Evaluation protocols shipped with egobench, as YAML data files."""
