"""Verb and noun of an action label, for per-verb / per-noun breakdowns.

Written by hand: a small rule-based lemmatizer, not NLTK's WordNet (which
LEGO's VLLM prompt uses), so that egobench needs no corpus download. It covers
the labels of this task: Ego4D narrations ("#C C picks up a knife from the
table") and EPIC-KITCHENS narrations ("put down plate"). Numbers from it are
breakdown keys, not metric inputs; they can differ from WordNet on rare words.

Rules
-----
* The narration is lower-cased; a leading ``#C C`` (or ``#C``) is stripped and
  ``#``-tags such as ``#unsure`` are dropped.
* verb: the first word, lemmatized (``opens`` -> ``open``, ``carries`` ->
  ``carry``, ``washes`` -> ``wash``; a few irregular forms by table). With
  ``particle=True`` (EPIC style) a particle right after it is joined with
  ``-`` (``put down plate`` -> ``put-down``), as EPIC's own ``verb`` column does.
* noun: the head of the object phrase: after the verb, particles, determiners
  and possessives are skipped, the phrase ends at the first preposition,
  conjunction or punctuation, and its last alphabetic word, singularised, is
  the head (``the cut onion in the bowl`` -> ``onion``). "a piece of dough"
  takes the noun after ``of`` (``dough``). No object gives ``""``.

EPIC-KITCHENS annotations carry their own ``verb`` and ``noun`` columns;
``egobench prepare`` writes them into the split JSON and they are used as they
are; the rules here apply where a split carries no such keys (the LEGO release).
"""

from __future__ import annotations

import re

__all__ = ["derive_verb_noun", "lemmatize_verb", "singularize", "strip_narrator"]

_PREFIX = re.compile(r"^\s*#\s*c(\s+c)?\b\s*", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z'-]*|\d+|[^\sa-z\d]")

PARTICLES = frozenset("up down on off out in into away back over around about through apart together".split())
DETERMINERS = frozenset(
    "a an the some any this that these those his her its their my your our another other each every "
    "both all few several more much many one two three four five six seven eight nine ten".split()
)
# end of an object phrase
STOPS = frozenset(
    "from with to into onto on in at by for of off over under inside outside near behind across through "
    "and or but while as then using towards toward against between above below beside around out up down "
    "away back".split()
)
PARTITIVES = frozenset("piece pieces bit bits slice slices handful lump cup bunch pinch pair sheet".split())

_IRREGULAR_VERBS = {"has": "have", "does": "do", "goes": "go", "is": "be", "are": "be", "was": "be"}
_IRREGULAR_NOUNS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "feet": "foot",
    "teeth": "tooth", "mice": "mouse", "knives": "knife", "leaves": "leaf", "loaves": "loaf",
    "shelves": "shelf", "halves": "half", "wives": "wife", "lives": "life", "scarves": "scarf",
    "wolves": "wolf", "calves": "calf", "potatoes": "potato", "tomatoes": "tomato", "cookies": "cookie",
    "pies": "pie", "ties": "tie", "movies": "movie", "brownies": "brownie", "cakes": "cake",
}
# words whose final s is not a plural
_KEEP_S = frozenset(
    "glass grass gas bus lens scissors pliers tongs jeans pants trousers clothes shorts news "
    "series species tennis chess hummus asparagus couscous citrus cactus octopus bias canvas "
    "dress cress mattress press compass".split()
)


def strip_narrator(text: str) -> str:
    """``"#C C opens drawer"`` -> ``"opens drawer"`` (lower-cased, ``#``-tags dropped)."""
    text = _PREFIX.sub("", text.strip().lower())
    return " ".join(w for w in text.split() if not w.startswith("#"))


def lemmatize_verb(word: str) -> str:
    """Base form of a present-tense verb (``opens`` -> ``open``); base forms pass unchanged."""
    w = word.lower()
    if w in _IRREGULAR_VERBS:
        return _IRREGULAR_VERBS[w]
    if len(w) <= 3 or not w.endswith("s") or w.endswith(("ss", "us", "is")):
        return w
    if w.endswith("ies"):
        return w[:-3] + "y" if len(w) > 4 else w[:-1]  # carries -> carry, ties -> tie
    if w.endswith(("sses", "shes", "ches", "xes", "zzes", "oes")):
        return w[:-2]  # passes, washes, touches, mixes, buzzes, echoes
    return w[:-1]  # opens, closes, uses, places, moves


def singularize(word: str) -> str:
    """Singular of a noun (``knives`` -> ``knife``, ``dishes`` -> ``dish``)."""
    w = word.lower()
    if w in _IRREGULAR_NOUNS:
        return _IRREGULAR_NOUNS[w]
    if len(w) <= 3 or not w.endswith("s") or w in _KEEP_S or w.endswith(("ss", "us", "is")):
        return w
    if w.endswith("ies"):
        return w[:-3] + "y"  # berries -> berry
    if w.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return w[:-2]  # glasses -> glass, dishes -> dish, boxes -> box
    return w[:-1]


def _head(words: list[str]) -> str:
    """Head noun of the object phrase starting at ``words[0]``."""
    phrase: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if not phrase and (w in DETERMINERS or w in PARTICLES):
            i += 1
            continue
        if w in STOPS or not (w[0].isalnum()):
            # "a piece of dough": the noun after "of"
            if w == "of" and phrase and phrase[-1] in PARTITIVES:
                phrase = []
                i += 1
                continue
            break
        phrase.append(w)
        i += 1
    alpha = [w for w in phrase if w[0].isalpha()]
    return singularize(alpha[-1].strip("'-")) if alpha else ""


def derive_verb_noun(action: str, *, particle: bool = False) -> tuple[str, str]:
    """(verb, noun) of an action label by the rules in this module's docstring."""
    words = _WORD.findall(strip_narrator(action))
    if not words or not words[0][0].isalpha():
        return "", ""
    verb = lemmatize_verb(words[0])
    rest = words[1:]
    if particle and rest and rest[0] in PARTICLES:
        verb = f"{verb}-{rest[0]}"
        rest = rest[1:]
    return verb, _head(rest)
