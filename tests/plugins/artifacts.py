"""Test-only artifacts, declared as objects for ``egobench.artifacts`` entry points
(``name = "tests.plugins.artifacts:PLUGIN_NET"`` or ``...:PLUGIN_NETS``)."""

from __future__ import annotations

from egobench.weights import Artifact

PLUGIN_NET = Artifact(name="plugin-net", description="a test artifact (an object entry point)",
                      files=("net.pt",), license="MIT", url="https://example.invalid/net.pt")
PLUGIN_NETS = (
    Artifact(name="plugin-net-a", description="a test artifact (a sequence entry point)", files=("a.pt",),
             license="MIT", url="https://example.invalid/a.pt"),
    Artifact(name="plugin-net-b", description="a test artifact (a sequence entry point)", files=("b.pt",),
             license="MIT", url="https://example.invalid/b.pt"),
)
NOT_AN_ARTIFACT = ("plugin-net-c",)
