"""The word lists the text judges share, loaded from ``judges/data/vocabulary.json``.

Why a shipped vocabulary: the prompt parser is rule based (no POS tagger works offline),
and contrastive scoring needs *alternatives* — the other colours, the other animals, the
other styles — to build foils. Both come from the same lists, so what the parser can
recognise is exactly what the judges can check, and a test config can narrow a class to
what a small model knows (``Vocabulary.with_overrides``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "vocabulary.json"

# How a class is used by the parser.
MODIFIER, NOUN, SCENE, COUNT = "modifier", "noun", "scene", "count"

_IRREGULAR_PLURALS = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "sheep": "sheep",
    "fish": "fish",
    "deer": "deer",
    "foot": "feet",
    "tooth": "teeth",
    "leaf": "leaves",
    "knife": "knives",
    "wolf": "wolves",
    "shelf": "shelves",
    "gentleman": "gentlemen",
    "businessman": "businessmen",
    "businesswoman": "businesswomen",
    "glasses": "glasses",
    "jeans": "jeans",
    "trousers": "trousers",
    "pants": "pants",
    "clothes": "clothes",
    "sunglasses": "sunglasses",
    "spectacles": "spectacles",
    "boots": "boots",
    "shoes": "shoes",
    "sneakers": "sneakers",
    "gloves": "gloves",
    "grapes": "grapes",
    "people": "people",
    "furniture": "furniture",
    "clothing": "clothing",
    "grass": "grass",
    "bread": "bread",
    "salad": "salads",
    "coffee": "coffee",
    "cup of coffee": "cups of coffee",
    "ice cream": "ice creams",
}

TOKEN_RE = re.compile(r"[a-z0-9]+(?:['’\-][a-z0-9]+)*|[,;:.!?()&/]")


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased word and punctuation tokens with their character spans in ``text``."""
    return [(m.group(0).replace("’", "'"), m.start(), m.end()) for m in TOKEN_RE.finditer(text.lower())]


def pluralize(word: str) -> str:
    """English plural of a noun phrase's last word (rules + a short irregular list)."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    head, _, last = word.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last in _IRREGULAR_PLURALS:
        return prefix + _IRREGULAR_PLURALS[last]
    if re.search(r"(s|x|z|ch|sh)$", last):
        return prefix + last + "es"
    if re.search(r"[^aeiou]y$", last):
        return prefix + last[:-1] + "ies"
    return prefix + last + "s"


def article(word: str) -> str:
    """'a' or 'an' for the word that follows (spelling rule with the common exceptions)."""
    w = word.lower()
    if re.match(r"(hour|honest|honou?r|heir)", w):
        return "an"
    if re.match(r"(uni|use|usu|eu|one\b|once)", w):
        return "a"
    if re.match(r"[0-9]", w):
        return "an" if re.match(r"(8|11|18)", w) else "a"
    return "an" if w[:1] in "aeiou" else "a"


_ART_RE = re.compile(r"\b([Aa]n?) ([A-Za-z0-9][\w'\-]*)")


def fix_articles(text: str) -> str:
    """Re-agree every 'a'/'an' with the word after it (after a word was swapped in)."""

    def repl(m: re.Match[str]) -> str:
        art = article(m.group(2))
        if m.group(1)[0].isupper():
            art = art.capitalize()
        return f"{art} {m.group(2)}"

    return _ART_RE.sub(repl, text)


@dataclass(frozen=True)
class Term:
    """What a matched phrase means: its class, canonical value and grammatical number."""

    cls: str
    canonical: str
    kind: str
    plural: bool = False
    generic: bool = False


@dataclass
class WordClass:
    name: str
    kind: str
    entries: list[list[str]]  # [canonical, synonym, ...]
    generic: list[str] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)
    scene_role: str | None = None

    @property
    def values(self) -> list[str]:
        return [e[0] for e in self.entries]

    def canonical_of(self, word: str) -> str | None:
        w = word.lower().strip()
        for e in self.entries:
            if w in e:
                return e[0]
        return None

    def caption(self, canonical: str) -> str:
        """How a value reads as a caption on its own ('an oil painting', 'a scene at night')."""
        if canonical in self.display:
            return self.display[canonical]
        return f"{article(canonical)} {canonical}"


class Vocabulary:
    """Word classes + a phrase lexicon (longest match first) built from them."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.classes: dict[str, WordClass] = {}
        for name, spec in data["classes"].items():
            self.classes[name] = WordClass(
                name=name,
                kind=spec["kind"],
                entries=[list(e) for e in spec.get("entries", [])],
                generic=list(spec.get("generic", [])),
                display=dict(spec.get("display", {})),
                scene_role=spec.get("scene_role"),
            )
        self.neutral_framing: list[str] = list(data.get("neutral_framing", []))
        # class -> value -> values that can be true together with it (never its foils)
        self.overlaps: dict[str, dict[str, set[str]]] = {}
        for cls, groups in data.get("overlaps", {}).items():
            if cls.startswith("_"):
                continue
            for group in groups:
                for v in group:
                    self.overlaps.setdefault(cls, {}).setdefault(v, set()).update(g for g in group if g != v)
        self.attribute_keys: dict[str, dict] = {
            k: v for k, v in data.get("attribute_keys", {}).items() if not k.startswith("_")
        }
        self.non_visual_keys: dict[str, list[str]] = {
            k: v for k, v in data.get("non_visual_keys", {}).items() if not k.startswith("_")
        }
        self._build_lexicon()

    # -- construction ------------------------------------------------------
    def _build_lexicon(self) -> None:
        lex: dict[tuple[str, ...], Term] = {}

        def add(phrase: str, term: Term) -> None:
            key = tuple(t for t, _, _ in tokenize(phrase))
            if key and key not in lex:  # first class listed wins an ambiguous word
                lex[key] = term

        for wc in self.classes.values():
            for entry in wc.entries:
                canonical = entry[0]
                for syn in entry:
                    add(syn, Term(wc.name, canonical, wc.kind))
                    if wc.kind == NOUN:
                        plural = pluralize(syn)
                        if plural != syn:
                            add(plural, Term(wc.name, canonical, wc.kind, plural=True))
            for g in wc.generic:
                add(g, Term(wc.name, g, wc.kind, generic=True))
                plural = pluralize(g)
                if plural != g:
                    add(plural, Term(wc.name, g, wc.kind, plural=True, generic=True))
        self.lexicon = lex
        self.max_phrase = max((len(k) for k in lex), default=1)

    def with_overrides(self, overrides: dict[str, list[str]] | None) -> Vocabulary:
        """A copy where each named class keeps only the listed values (synonyms kept).

        Why: a small or specialised model knows a few words; foils it never saw are noise.
        """
        if not overrides:
            return self
        data = json.loads(json.dumps(self.data))
        for name, values in overrides.items():
            if name not in data["classes"]:
                raise ValueError(f"vocabulary override names unknown class '{name}' (known: {sorted(data['classes'])})")
            if not values:
                raise ValueError(f"vocabulary override for '{name}' is empty")
            old = {e[0]: e for e in data["classes"][name].get("entries", [])}
            data["classes"][name]["entries"] = [old.get(v.lower(), [v.lower()]) for v in values]
        return Vocabulary(data)

    # -- queries -----------------------------------------------------------
    def match(self, words: list[str], i: int) -> tuple[Term, int] | None:
        """Longest lexicon phrase starting at token ``i``: (term, number of tokens)."""
        for n in range(min(self.max_phrase, len(words) - i), 0, -1):
            term = self.lexicon.get(tuple(words[i : i + n]))
            if term is not None:
                return term, n
        return None

    def alternatives(self, cls: str, canonical: str, limit: int | None = None) -> list[str]:
        """Other canonical values of the class that exclude this one, in vocabulary order.

        Values listed together under ``overlaps`` (gold/yellow, headshot/portrait) can both
        be true of one image, so they are never each other's foils.
        """
        wc = self.classes[cls]
        overlapping = self.overlaps.get(cls, {}).get(canonical, set())
        alts = [e[0] for e in wc.entries if e[0] != canonical and canonical not in e and e[0] not in overlapping]
        return alts[:limit] if limit is not None else alts

    def key_spec(self, key: str) -> tuple[str, dict] | None:
        """The attribute-key spec for an input_attributes key (aliases, case-insensitive)."""
        k = re.sub(r"[\s\-]+", "_", key.strip().lower())
        for name, spec in self.attribute_keys.items():
            if k == name or k in spec.get("aliases", []):
                return name, spec
        return None

    def non_visual_reason(self, key: str) -> str | None:
        k = re.sub(r"[\s\-]+", "_", key.strip().lower())
        for group, keys in self.non_visual_keys.items():
            if k in keys or any(k.endswith("_" + x) for x in keys if x in {"id", "uuid"}):
                return group
        return None


@lru_cache(maxsize=1)
def _default() -> Vocabulary:
    with DATA.open(encoding="utf-8") as f:
        return Vocabulary(json.load(f))


def load_vocabulary(overrides: dict[str, list[str]] | None = None) -> Vocabulary:
    """The shipped vocabulary, optionally narrowed per class."""
    base = _default()
    return base.with_overrides(overrides) if overrides else base


def unique(seq: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(seq))
