"""The text an editor is given: a template over the sample's action fields."""

from __future__ import annotations

import re
import string

from egobench.data import Sample
from egobench.errors import ConfigError

#: fields a ``-o prompt=TEMPLATE`` may name (``label``: the action exactly as the split file holds it,
#: the text the ip2p / sdedit baselines are given)
PROMPT_FIELDS = ("action", "verb", "noun", "description", "label")

#: Ego4D narrations start with "#C C" (the camera wearer); an editor is told the action, not the notation
_EGO4D_PREFIX = re.compile(r"^\s*#\s*C\s+C\s+", re.IGNORECASE)


def strip_narrator(action: str) -> str:
    """The action label without Ego4D's ``#C C`` prefix ("#C C opens the door" -> "opens the door")."""
    return _EGO4D_PREFIX.sub("", action).strip()


def check_template(template: str | None, where: str) -> None:
    """Refuse a template naming an unknown field or malformed (before a run directory exists)."""
    if template is None:
        return
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ConfigError(f"{where}: prompt template {template!r} is malformed: {e}") from None
    for name in names:
        if name not in PROMPT_FIELDS:
            raise ConfigError(f"{where}: prompt template field {{{name}}} is unknown; use "
                              + ", ".join("{" + f + "}" for f in PROMPT_FIELDS))


def render(template: str | None, sample: Sample) -> str:
    """The prompt for ``sample``: the template filled in, or the action label without ``#C C``."""
    action = strip_narrator(sample.action)
    if template is None:
        return action
    return template.format(action=action, verb=sample.verb, noun=sample.noun, description=sample.description,
                           label=sample.action)
