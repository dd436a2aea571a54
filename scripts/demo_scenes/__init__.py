"""Procedural first-person kitchen scenes: the drawing behind the demo split (scripts/build_demo_split.py)."""
