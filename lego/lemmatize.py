"""Ego4D narration -> the action phrase LEGO's VLLM prompt uses.

What the released code does (``vllm/llava/eval/run_llava_in_loop.py``, Ego4D
only; EPIC-KITCHENS labels are used verbatim)::

    action = action[2:].strip()   # remove "#C"
    action = action[2:].strip()   # remove the subject "C"
    verb, remain = action.split(' ', 1)          # or just the verb
    verb = WordNetLemmatizer().lemmatize(verb.lower(), 'v')
    action = verb + ' ' + remain                 # or just the verb

So only the first word is lower-cased and lemmatized; the rest is kept as
written ("#C C opens the drawer" -> "open the drawer").

:func:`strip_and_lemmatize` does the same. Two choices are ours:

* **Prefix removal.** The release cuts two characters twice, blindly. That
  equals removing ``#C`` and ``C`` for every narration LEGO kept (the dataset
  keeps only ``#C C ...`` narrations), but mangles anything else ("#O man X
  ..." -> "n X ..."). By default we remove a leading ``#C``/``#c`` tag and then
  a leading subject ``C``/``c`` as whole words (so "#c c opens" and "#C  C
  opens" work too). Narrations of other people (``#O``) or other tags keep
  their text after the tag and are *not* lemmatized: their first word is a
  subject ("man", "person"), not the verb. ``release_slicing=True`` reproduces
  the release's character slicing exactly.
* **Lemmatizer.** With nltk and its WordNet corpus installed locally (nltk is
  not a dependency and nothing is downloaded), NLTK's
  ``WordNetLemmatizer().lemmatize(w, 'v')`` is used, as in the release.
  Otherwise a built-in re-implementation of WordNet's ``morphy`` for verbs:
  the exception list is consulted first, then the suffix rules ``-s -> ''``,
  ``-ies -> y``, ``-es -> e``, ``-es -> ''``, ``-ed -> e``, ``-ed -> ''``,
  ``-ing -> e``, ``-ing -> ''`` are applied (repeatedly, as morphy does) and
  candidates are kept only when they are verbs of a built-in vocabulary; like
  NLTK, the *shortest* surviving candidate wins (so WordNet's quirks are kept:
  "scrapes" -> "scrap", "tapes" -> "tap", "rides" -> "rid", because those
  shorter forms are verbs too). The vocabulary is a few hundred verbs common
  in Ego4D / EPIC-KITCHENS narrations (plus the short WordNet verbs that make
  the quirks); a word whose candidates are all outside it is de-inflected by
  plain English rules instead (``-ies -> y``, ``-(s|sh|ch|x|z)es -> \\1``,
  ``-s -> ''``), which is where the fallback can differ from WordNet.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

__all__ = ["strip_and_lemmatize", "lemmatize_verb", "backend", "release_strip"]

#: WordNet morphy's verb substitutions, in WordNet's order
VERB_RULES: tuple[tuple[str, str], ...] = (
    ("s", ""),
    ("ies", "y"),
    ("es", "e"),
    ("es", ""),
    ("ed", "e"),
    ("ed", ""),
    ("ing", "e"),
    ("ing", ""),
)

#: irregular forms from WordNet's verb.exc (those seen in narrations), form -> lemmas
VERB_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    "am": ("be",), "are": ("be",), "is": ("be",), "was": ("be",), "were": ("be",), "been": ("be",),
    "has": ("have",), "had": ("have",), "does": ("do",), "did": ("do",), "done": ("do",),
    "goes": ("go",), "went": ("go",), "gone": ("go",),
    "took": ("take",), "taken": ("take",), "made": ("make",), "held": ("hold",),
    "got": ("get",), "gotten": ("get",), "gave": ("give",), "given": ("give",),
    "brought": ("bring",), "caught": ("catch",), "came": ("come",), "dug": ("dig",),
    "drew": ("draw",), "drawn": ("draw",), "ate": ("eat",), "eaten": ("eat",), "fed": ("feed",),
    "felt": ("feel",), "found": ("find",), "hung": ("hang",), "hid": ("hide",), "hidden": ("hide",),
    "kept": ("keep",), "knelt": ("kneel",), "laid": ("lay",), "lay": ("lie",), "lain": ("lie",),
    "led": ("lead",), "left": ("leave",), "lit": ("light",), "lost": ("lose",), "met": ("meet",),
    "paid": ("pay",), "ran": ("run",), "rode": ("ride",), "ridden": ("ride",), "rose": ("rise",),
    "said": ("say",), "sat": ("sit",), "saw": ("see",), "seen": ("see",), "sent": ("send",),
    "shook": ("shake",), "shaken": ("shake",), "sold": ("sell",), "slid": ("slide",), "spun": ("spin",),
    "stood": ("stand",), "stuck": ("stick",), "swept": ("sweep",), "told": ("tell",),
    "thought": ("think",), "threw": ("throw",), "thrown": ("throw",), "tore": ("tear",), "torn": ("tear",),
    "wore": ("wear",), "worn": ("wear",), "wound": ("wind",), "wrote": ("write",), "written": ("write",),
    "bent": ("bend",), "bit": ("bite",), "bitten": ("bite",), "blew": ("blow",), "blown": ("blow",),
    "broke": ("break",), "broken": ("break",), "built": ("build",), "bought": ("buy",),
    "chose": ("choose",), "chosen": ("choose",), "drank": ("drink",), "drove": ("drive",),
    "driven": ("drive",), "fell": ("fall",), "fallen": ("fall",), "flew": ("fly",), "froze": ("freeze",),
    "frozen": ("freeze",), "grew": ("grow",), "grown": ("grow",), "heard": ("hear",), "knew": ("know",),
    "known": ("know",), "spoke": ("speak",), "spent": ("spend",), "struck": ("strike",),
    "swung": ("swing",), "wove": ("weave",), "woven": ("weave",), "won": ("win",), "wrung": ("wring",),
    "ground": ("grind",), "slept": ("sleep",), "sank": ("sink",), "shot": ("shoot",),
    "taught": ("teach",), "understood": ("understand",), "woke": ("wake",), "woken": ("wake",),
}

_VERBS = """
add adjust aim align apply arrange assemble attach bake balance bang bend bind bite blend blow boil
bolt break bring brush build bump buy carry carve catch change charge chase check chew chop clap clean
cleanse clear climb clip close coat collect comb come compress connect cook cool count cover crack crash
crawl crease crumple crush cut dab dance dig dip direct disassemble discard dismantle divide do drag
drain draw dress drill drink drip drive drop dry dust dye eat empty enter examine exit eye fan fasten
feed feel fetch file fill find fit fix flatten flip float fluff fly fold follow fry gather get give glue
go grab grate grind grip grab guide hammer hand handle hang have hit hold hook hop hose hug insert inspect
iron jump keep kick kneel knead knit knock knot label lace lay lead lean leave level lick lie lift light
line load lock look loosen lower make mark mash measure melt mix mop mount move nail note oil open operate
pack paint pass paste pat pay peel pick pin pinch pipe place plait plan plane plant play plug point poke
polish pour press prune pull pump punch push put raise rake reach read release remove repair replace
rest return ride rinse roll rotate rub run sand saw say scatter scoop scrape scratch screw scroll scrub
search season see sell send separate serve set sew shake shape sharpen shave shift shovel show shred
shuffle shut sieve sift sing sink sip sit slice slide smash smell smooth soak solder sort spin spray
spread sprinkle squat squeeze stack stamp stand staple start steam step stick stir stitch stop store
straighten stretch strike strip stuff sweep swing switch take talk tap tape taste tear tell test thread
throw tidy tie tighten tilt tip toss touch trim tuck turn twist type unbolt unbutton uncover unfold
unhook unlock unpack unplug unroll unscrew untie unwrap unzip use vacuum wait walk wash watch water
wave wear weave weigh wet whip whisk wind wipe wrap wring write zip
be bite bid cap con cop cub din dot fin gap hat kit mat mop pip plan rat rid rob rout scrap shin slop snip
spit tap tub twin wad win bit fell wound found
stir saw lay
"""

#: the built-in verb vocabulary (base forms) the fallback's candidates are checked against
VERB_VOCAB: frozenset[str] = frozenset(_VERBS.split())

_WORDNET_UNAVAILABLE = (ImportError, LookupError, OSError, AttributeError)


@functools.lru_cache(maxsize=1)
def _nltk_lemmatizer():
    """NLTK's WordNetLemmatizer when nltk and its wordnet corpus are installed locally, else None."""
    try:
        from nltk.stem import WordNetLemmatizer

        lem = WordNetLemmatizer()
        lem.lemmatize("opens", "v")  # raises LookupError when the corpus is missing (never downloads)
        return lem
    except _WORDNET_UNAVAILABLE:
        return None


def backend(use_nltk: bool | None = None) -> Literal["nltk-wordnet", "builtin-morphy"]:
    """Which lemmatizer :func:`lemmatize_verb` uses (for provenance records)."""
    if use_nltk is False:
        return "builtin-morphy"
    return "nltk-wordnet" if _nltk_lemmatizer() is not None else "builtin-morphy"


def _apply_rules(forms: list[str]) -> list[str]:
    return [form[: -len(old)] + new for form in forms for old, new in VERB_RULES if form.endswith(old)]


def _filter(forms: list[str]) -> list[str]:
    out: list[str] = []
    for form in forms:
        if form in VERB_VOCAB and form not in out:
            out.append(form)
    return out


def _morphy_verb(form: str) -> list[str]:
    """WordNet morphy (pos='v') over the built-in vocabulary and exception list."""
    if form in VERB_EXCEPTIONS:
        return _filter([form, *VERB_EXCEPTIONS[form]])
    forms = _apply_rules([form])
    found = _filter([form, *forms])
    if found:
        return found
    while forms:
        forms = _apply_rules(forms)
        found = _filter(forms)
        if found:
            return found
    return []


def _english_deinflect(word: str) -> str:
    """Plain rules for words outside the vocabulary (third person singular only)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if re.search(r"(ss|sh|ch|x|z)es$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not re.search(r"(ss|us|is)$", word):
        return word[:-1]
    return word


def lemmatize_verb(word: str, use_nltk: bool | None = None) -> str:
    """``WordNetLemmatizer().lemmatize(word, 'v')``, or the built-in equivalent.

    ``use_nltk``: None = NLTK when available locally; False = always the
    built-in fallback; True = require NLTK (ImportError/LookupError otherwise).
    """
    if use_nltk is not False:
        lem = _nltk_lemmatizer()
        if lem is not None:
            return lem.lemmatize(word, "v")
        if use_nltk:
            raise LookupError("nltk with its wordnet corpus is not installed locally")
    lemmas = _morphy_verb(word)
    if lemmas:
        return min(lemmas, key=len)
    return _english_deinflect(word)


def release_strip(narration: str) -> str:
    """The release's prefix removal: two characters off, strip, twice."""
    action = narration[2:].strip()
    return action[2:].strip()


_TAG = re.compile(r"^#\s*([A-Za-z]+)\b\s*")
_SUBJECT_C = re.compile(r"^[Cc]\b\s*")


def _lemmatize_first(action: str, use_nltk: bool | None) -> str:
    verb, _, remain = action.partition(" ")
    verb = lemmatize_verb(verb.lower(), use_nltk)
    return f"{verb} {remain}" if remain != "" else verb


def strip_and_lemmatize(narration: str, *, release_slicing: bool = False, use_nltk: bool | None = None) -> str:
    """"#C C opens the drawer" -> "open the drawer" (see the module docstring)."""
    if release_slicing:
        return _lemmatize_first(release_strip(narration), use_nltk)
    text = narration.strip()
    m = _TAG.match(text)
    if m is None:  # no tag: a plain "opens the drawer" / "C opens the drawer"
        text = _SUBJECT_C.sub("", text, count=1)
        return _lemmatize_first(text, use_nltk) if text else text
    tag = m.group(1).upper()
    text = text[m.end():]
    if tag != "C":  # "#O man X opens ...": the first word is a subject, not the verb
        return text
    text = _SUBJECT_C.sub("", text, count=1)
    return _lemmatize_first(text, use_nltk) if text else text
