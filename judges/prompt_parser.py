"""Split a generation prompt into checkable sub-points, each with its foils.

Deterministic and rule based (regex tokens + the shipped vocabulary): the same prompt
always gives the same sub-points, so results are reproducible and testable, and nothing
needs a downloaded NLP model.

A sub-point is a short caption that the image should support ("a red hat", "two dogs",
"a watercolor painting") plus *foils*: the same caption with one recognised word swapped
for another value of its class ("a blue hat", "a red scarf", "three dogs",
"an oil painting"). Judges score the caption against its foils, so a pass means "the
image fits this text better than its near alternatives" rather than "the raw cosine is
high", which has no fixed meaning across models.

What the parser reads:

- noun phrases: [determiner] [count] [modifiers: colour, material, size, pattern, unknown
  adjectives] noun — the first non-setting noun phrase is the ``subject``, others are
  ``object``; nouns of the ``setting`` class ("on a beach") are ``setting``; "background"
  is ``background``. A modifier followed by an unknown word ("a red zorblax") makes the
  unknown word the head (attribute foils only).
- count words ("two", "3", "a pair of") give an extra ``count`` sub-point.
- scene words anywhere (style, lighting, weather, shot) give one sub-point each.
- phrases after "no" / "without" / "not" are negations: recorded, not scored here.
- content words it does not recognise are listed in ``unparsed`` so that a reader sees
  what was *not* checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imagejury.judges.vocabulary import (
    COUNT,
    MODIFIER,
    NOUN,
    SCENE,
    Term,
    Vocabulary,
    fix_articles,
    load_vocabulary,
    pluralize,
    tokenize,
)

DETERMINERS = frozenset(
    [
        "a",
        "an",
        "the",
        "some",
        "this",
        "that",
        "these",
        "those",
        "its",
        "his",
        "her",
        "their",
        "my",
        "our",
        "your",
        "several",
        "many",
        "few",
        "multiple",
    ]
)
BOUNDARIES = frozenset(
    [
        ",",
        ";",
        ":",
        ".",
        "!",
        "?",
        "(",
        ")",
        "&",
        "/",
        "and",
        "or",
        "with",
        "on",
        "in",
        "at",
        "of",
        "under",
        "over",
        "above",
        "below",
        "near",
        "beside",
        "behind",
        "next",
        "to",
        "by",
        "from",
        "into",
        "onto",
        "against",
        "inside",
        "outside",
        "around",
        "between",
        "while",
        "wearing",
        "holding",
        "carrying",
        "sitting",
        "standing",
        "lying",
        "riding",
        "eating",
        "playing",
        "walking",
        "running",
        "flying",
        "looking",
        "is",
        "are",
        "was",
        "were",
        "has",
        "have",
        "who",
        "which",
        "that",
        "where",
    ]
)
NEGATORS = frozenset({"no", "without", "not", "never", "nothing"})
STOPWORDS = (
    BOUNDARIES
    | DETERMINERS
    | NEGATORS
    | frozenset(
        [
            "very",
            "highly",
            "style",
            "styled",
            "of-the",
            "front",
            "top",
            "left",
            "right",
            "center",
            "centre",
            "middle",
            "up",
            "down",
            "it",
            "be",
            "being",
            "full",
            "detailed",
            "highly",
            "quality",
            "high",
            "best",
            "masterpiece",
            "4k",
            "8k",
            "hd",
            "uhd",
            "hdr",
            "ultra",
            "photo-realistic",
            "trending",
            "artstation",
            "beautiful",
            "stunning",
            "amazing",
            "award",
            "winning",
            "professional",
            "sharp",
            "focus",
        ]
    )
)
COUNT_VALUES = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
NUMBER_WORDS = {v: k for k, v in COUNT_VALUES.items()}

# Scoring order when the number of sub-points is capped: what the prompt is *about* first.
KIND_PRIORITY = ("subject", "object", "count", "background", "setting", "style", "lighting", "weather", "shot")
# count nouns that stand for "some other kind of thing" when the prompt names only a generic noun
GENERIC_ALTERNATIVES = {
    "person": "person",
    "animal": "animal",
    "vehicle": "vehicle",
    "object": "object",
    "plant": "plant",
    "shape": "shape",
}
# foil kinds that change an attribute (vs. the object itself)
ATTRIBUTE_CLASSES = frozenset({"colour", "material", "size", "pattern"})


@dataclass(frozen=True)
class Foil:
    """An alternative caption: ``original`` (of class ``changed``) replaced by ``replacement``."""

    text: str
    changed: str  # vocabulary class of the swapped word ('colour', 'animal', 'count', 'style', ...)
    original: str
    replacement: str

    @property
    def is_attribute(self) -> bool:
        return self.changed in ATTRIBUTE_CLASSES


@dataclass
class SubPoint:
    text: str
    kind: str  # subject | object | setting | background | count | style | lighting | weather | shot
    head: str | None = None  # canonical head noun (or the unknown head word)
    head_class: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)  # class -> canonical values
    count: int | None = None
    span: tuple[int, int] = (0, 0)  # characters in the prompt
    foils: list[Foil] = field(default_factory=list)

    @property
    def aspect(self) -> str:
        """The rubric aspect this sub-point belongs to (for ignore/prioritise directives)."""
        if self.kind in {"setting", "background"}:
            return "background"
        if self.kind in {"lighting", "weather"}:
            return "lighting"
        if self.kind == "shot":
            return "composition"
        if self.head_class == "clothing":
            return "clothing"
        return "prompt"


@dataclass
class ParsedPrompt:
    text: str
    sub_points: list[SubPoint]
    prompt_foils: list[Foil]
    negations: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)


@dataclass
class _Mod:
    term: Term
    start: int  # char span in the prompt
    end: int


@dataclass
class _NP:
    start: int
    end: int
    head: Term | None
    head_word: str
    head_span: tuple[int, int]
    mods: list[_Mod]
    count: _Mod | None
    negated: bool


class PromptParser:
    """Parse prompts with one vocabulary and foil budget."""

    def __init__(
        self, vocabulary: Vocabulary | None = None, max_foils_per_class: int = 6, max_prompt_foils: int = 12
    ) -> None:
        if max_foils_per_class < 1 or max_prompt_foils < 1:
            raise ValueError("foil limits must be at least 1")
        self.vocab = vocabulary or load_vocabulary()
        self.max_foils_per_class = max_foils_per_class
        self.max_prompt_foils = max_prompt_foils

    # -- public ----------------------------------------------------------------
    def parse(self, prompt: str) -> ParsedPrompt:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
        toks = tokenize(prompt)
        words = [t for t, _, _ in toks]
        nps, scenes, covered = self._scan(prompt, toks, words)
        # nouns the prompt asks for are never foils of each other ("a dog and a cat")
        present = {np_.head.canonical for np_ in nps if np_.head is not None and not np_.negated}

        sub_points: list[SubPoint] = []
        negations: list[str] = []
        seen_subject = False
        for np_ in nps:
            text = prompt[np_.start : np_.end].strip()
            if np_.negated:
                negations.append(text)
                continue
            kind = self._kind(np_, seen_subject)
            seen_subject = seen_subject or kind == "subject"
            sp = SubPoint(
                text=text,
                kind=kind,
                head=np_.head.canonical if np_.head else np_.head_word,
                head_class=np_.head.cls if np_.head else None,
                attributes=_attrs(np_.mods),
                count=COUNT_VALUES.get(np_.count.term.canonical) if np_.count else None,
                span=(np_.start, np_.end),
            )
            sp.foils = self._np_foils(prompt, np_, np_.start, np_.end, present)
            sub_points.append(sp)
            if np_.count is not None and np_.head is not None:
                sub_points.append(self._count_point(np_))

        seen_scene: set[tuple[str, str]] = set()
        for term, s, e in scenes:
            if (term.cls, term.canonical) in seen_scene:
                continue
            seen_scene.add((term.cls, term.canonical))
            wc = self.vocab.classes[term.cls]
            alts = self.vocab.alternatives(term.cls, term.canonical, self.max_foils_per_class)
            sub_points.append(
                SubPoint(
                    text=wc.caption(term.canonical),
                    kind=term.cls,
                    head=term.canonical,
                    head_class=term.cls,
                    span=(s, e),
                    foils=[Foil(wc.caption(a), term.cls, term.canonical, a) for a in alts],
                )
            )

        sub_points.sort(key=lambda p: (KIND_PRIORITY.index(p.kind) if p.kind in KIND_PRIORITY else 99, p.span[0]))
        unparsed = [
            w
            for i, (w, _, _) in enumerate(toks)
            if i not in covered and w not in STOPWORDS and w.isalpha() and len(w) > 2
        ]
        return ParsedPrompt(
            text=prompt,
            sub_points=_dedupe(sub_points),
            prompt_foils=self._prompt_foils(prompt, nps, scenes, present),
            negations=negations,
            unparsed=list(dict.fromkeys(unparsed)),
        )

    def phrase_foils(self, phrase: str) -> tuple[SubPoint | None, list[Foil]]:
        """Parse a short phrase ("blue shapes") as one noun phrase: its sub-point and foils."""
        parsed = self.parse(phrase)
        points = [p for p in parsed.sub_points if p.kind not in {"count"}]
        if not points:
            return None, []
        main = max(points, key=lambda p: p.span[1] - p.span[0])
        return main, main.foils

    # -- scanning --------------------------------------------------------------
    def _scan(
        self, prompt: str, toks: list[tuple[str, int, int]], words: list[str]
    ) -> tuple[list[_NP], list[tuple[Term, int, int]], set[int]]:
        nps: list[_NP] = []
        scenes: list[tuple[Term, int, int]] = []
        covered: set[int] = set()
        start: int | None = None  # char offset where the pending NP starts
        start_tok: int | None = None
        mods: list[_Mod] = []
        count: _Mod | None = None
        negated = False
        last_negated = False  # the previous noun phrase was negated

        def reset() -> None:
            nonlocal start, start_tok, mods, count, negated
            start, start_tok, mods, count, negated = None, None, [], None, False

        i = 0
        n = len(toks)
        while i < n:
            w, s, e = toks[i]
            m = self.vocab.match(words, i)
            if m is not None and not (w in DETERMINERS and m[0].kind != COUNT):
                term, k = m
                end_char = toks[i + k - 1][2]
                if term.kind == SCENE:
                    scenes.append((term, s, end_char))
                    covered.update(range(i, i + k))
                    i += k
                    continue
                if term.kind == COUNT:
                    if start is None:
                        start, start_tok = s, i
                    count = _Mod(term, s, end_char)
                    covered.update(range(i, i + k))
                    i += k
                    if i < n and words[i] == "of":  # "a pair of shoes"
                        i += 1
                    continue
                if term.kind == MODIFIER:
                    # an adjective followed by nothing noun-like is not a modifier ("orange" alone)
                    if start is None:
                        start, start_tok = s, i
                    mods.append(_Mod(term, s, end_char))
                    covered.update(range(i, i + k))
                    i += k
                    continue
                if term.kind == NOUN:
                    nxt = self.vocab.match(words, i + k) if i + k < n else None
                    if nxt is not None and nxt[0].kind == NOUN and (i + k) < n and words[i + k] not in BOUNDARIES:
                        # noun-noun compound ("coffee cup"): the last noun is the head
                        if start is None:
                            start, start_tok = s, i
                        covered.update(range(i, i + k))
                        i += k
                        continue
                    if start is None:
                        start, start_tok = s, i
                    nps.append(
                        _NP(start, end_char, term, prompt[s:end_char].lower(), (s, end_char), mods, count, negated)
                    )
                    last_negated = negated
                    covered.update(range(start_tok if start_tok is not None else i, i + k))
                    reset()
                    i += k
                    continue
            # not in the vocabulary
            if w in NEGATORS:
                reset()
                negated = True
                i += 1
                continue
            if w in DETERMINERS:
                keep_neg = negated
                if mods or count:
                    # "a red and a blue" etc.: pending modifiers without a head are dropped
                    pass
                reset()
                negated = keep_neg
                start, start_tok = s, i
                i += 1
                continue
            if w in BOUNDARIES:
                if w in {"and", "or"} and mods and i + 1 < n:
                    nxt = self.vocab.match(words, i + 1)
                    if nxt is not None and nxt[0].kind == MODIFIER:  # "red and blue circles"
                        i += 1
                        continue
                # "no text or watermark": the negation carries over "or", and over "and"/","
                # when no determiner starts a new phrase ("no cars and a dog" negates only cars)
                carried = negated or last_negated
                nxt_w = words[i + 1] if i + 1 < n else ""
                neg = carried and (w in {"or", "nor"} or (w in {"and", ","} and nxt_w not in DETERMINERS))
                reset()
                negated = neg
                i += 1
                continue
            # unknown content word
            if (mods or count) and w.isalpha():
                after: str | None = words[i + 1] if i + 1 < n else None
                nxt_m = self.vocab.match(words, i + 1) if i + 1 < n else None
                ends_here = (
                    after is None
                    or after in BOUNDARIES
                    or after in DETERMINERS
                    or after in NEGATORS
                    or (nxt_m is not None and nxt_m[0].kind == SCENE)
                )
                if ends_here:
                    head_word = w
                    nps.append(_NP(start if start is not None else s, e, None, head_word, (s, e), mods, count, negated))
                    last_negated = negated
                    covered.update(range(start_tok if start_tok is not None else i, i + 1))
                    reset()
                    i += 1
                    continue
            if start is None and w.isalpha() and w not in STOPWORDS:
                start, start_tok = s, i
            i += 1
        return nps, scenes, covered

    def _kind(self, np_: _NP, seen_subject: bool) -> str:
        if np_.head is not None:
            role = self.vocab.classes[np_.head.cls].scene_role
            if role == "setting":
                return "setting"
            if np_.head.cls == "background":
                return "background"
        return "object" if seen_subject else "subject"

    # -- foils -----------------------------------------------------------------
    def _swaps(self, np_: _NP, present: set[str]) -> list[tuple[tuple[int, int], str, str, str]]:
        """(char span, class, original, replacement) for every single-word change of the phrase."""
        swaps: list[tuple[tuple[int, int], str, str, str]] = []
        in_phrase: dict[str, set[str]] = {}
        for mod in np_.mods:
            in_phrase.setdefault(mod.term.cls, set()).add(mod.term.canonical)
        for mod in np_.mods:
            alts = [
                a for a in self.vocab.alternatives(mod.term.cls, mod.term.canonical) if a not in in_phrase[mod.term.cls]
            ]
            for a in alts[: self.max_foils_per_class]:
                swaps.append(((mod.start, mod.end), mod.term.cls, mod.term.canonical, a))
        head = np_.head
        many = head is not None and (head.plural or (np_.count is not None and np_.count.term.canonical != "one"))
        if head is not None and not head.generic:
            alts = [a for a in self.vocab.alternatives(head.cls, head.canonical) if a not in present]
            for a in alts[: self.max_foils_per_class]:
                swaps.append((np_.head_span, head.cls, head.canonical, pluralize(a) if many else a))
        elif head is not None and head.generic and not np_.mods:
            # a bare generic noun ("a person"): the alternatives are other kinds of thing
            for cls, g in GENERIC_ALTERNATIVES.items():
                if cls != head.cls and cls in self.vocab.classes:
                    swaps.append((np_.head_span, "object", head.canonical, pluralize(g) if head.plural else g))
            swaps = swaps[: self.max_foils_per_class]
        return swaps

    def _np_foils(self, text: str, np_: _NP, lo: int, hi: int, present: set[str]) -> list[Foil]:
        out: list[Foil] = []
        for (s, e), cls, orig, repl in self._swaps(np_, present):
            foil = fix_articles(text[lo:s] + repl + text[e:hi]).strip()
            out.append(Foil(foil, cls, orig, repl))
        return _unique_foils(out, exclude=text[lo:hi].strip())

    def _count_point(self, np_: _NP) -> SubPoint:
        assert np_.count is not None and np_.head is not None
        value = COUNT_VALUES.get(np_.count.term.canonical, 1)
        noun = np_.head.canonical

        def phrase(v: int) -> str:
            return f"{NUMBER_WORDS.get(v, str(v))} {noun if v == 1 else pluralize(noun)}"

        options = [v for v in (value - 1, value + 1, value + 2, 1) if 1 <= v <= 10 and v != value]
        foils = [Foil(phrase(v), "count", NUMBER_WORDS[value], NUMBER_WORDS[v]) for v in dict.fromkeys(options)]
        return SubPoint(
            text=phrase(value),
            kind="count",
            head=noun,
            head_class=np_.head.cls,
            count=value,
            span=(np_.count.start, np_.end),
            foils=foils[: self.max_foils_per_class],
        )

    def _prompt_foils(
        self, prompt: str, nps: list[_NP], scenes: list[tuple[Term, int, int]], present: set[str]
    ) -> list[Foil]:
        """Whole-prompt foils: one change each, taken round-robin over the parts."""
        per_part: list[list[Foil]] = []
        for np_ in nps:
            if np_.negated:
                continue
            per_part.append(
                [
                    Foil(fix_articles(prompt[:s] + r + prompt[e:]).strip(), c, o, r)
                    for (s, e), c, o, r in self._swaps(np_, present)
                ]
            )
            if np_.count is not None and prompt[np_.count.start : np_.count.end].lower() in COUNT_VALUES:
                value = COUNT_VALUES.get(np_.count.term.canonical, 1)
                cs, ce = np_.count.start, np_.count.end
                opts = [
                    v for v in (value + 1, value - 1) if (v >= 2 or value == 1 and v == 2) and v <= 10 and v != value
                ]
                per_part.append(
                    [
                        Foil(prompt[:cs] + NUMBER_WORDS[v] + prompt[ce:], "count", NUMBER_WORDS[value], NUMBER_WORDS[v])
                        for v in opts
                    ]
                )
        for term, s, e in scenes:
            alts = self.vocab.alternatives(term.cls, term.canonical, self.max_foils_per_class)
            per_part.append(
                [Foil(fix_articles(prompt[:s] + a + prompt[e:]).strip(), term.cls, term.canonical, a) for a in alts]
            )
        out: list[Foil] = []
        depth = max((len(p) for p in per_part), default=0)
        for d in range(depth):
            for part in per_part:
                if d < len(part):
                    out.append(part[d])
        return _unique_foils(out, exclude=prompt.strip())[: self.max_prompt_foils]


def _attrs(mods: list[_Mod]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in mods:
        out.setdefault(m.term.cls, []).append(m.term.canonical)
    return out


def _unique_foils(foils: list[Foil], exclude: str) -> list[Foil]:
    seen = {exclude.lower()}
    out = []
    for f in foils:
        key = f.text.lower()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _dedupe(points: list[SubPoint]) -> list[SubPoint]:
    seen: set[str] = set()
    out = []
    for p in points:
        key = p.text.lower()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def parse_prompt(prompt: str, vocabulary: Vocabulary | None = None) -> ParsedPrompt:
    """Parse with default foil limits (convenience for callers and tests)."""
    return PromptParser(vocabulary).parse(prompt)
