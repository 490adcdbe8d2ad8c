"""Read a free-text rubric (``evaluation_instructions``) into checks and directives.

Rule based and deterministic. Each sentence (or bullet) is read as one of:

- a **directive** about the evaluation itself: "ignore the background", "don't worry
  about lighting", "prioritise the face", "identity matters most". Directives name
  *aspects*, normalised to the small set in ``ASPECTS`` so the evaluator can map them
  to judges (skip / weight up) and judges can skip their own parts. A negated ignore
  ("don't ignore the background") ignores nothing; "ignore everything except the face"
  switches nothing off and is read as "prioritise the face".
- a **prohibition**: "no text or watermark", "there must be no blue shapes", "avoid
  logos", "the background must not be red" — each item is checked for *presence*.
- a **requirement**: "the background must be plain white", "must include a red hat",
  "make sure there is a dog" — checked as a caption the image should support.
- anything else is recorded as not read as a check (``unread``), never guessed.

Aspects come from the one table in ``imagejury.judges.taxonomy`` (``ASPECTS``), shared
with the planner and the judges: content aspects (background, face, text, lighting,
colour, composition, quality, identity, prompt, clothing, reference, attributes,
aesthetics, eyes, pose) and defect aspects (noise — "grain", "film grain" —, blur,
exposure, compression, banding, resolution, aspect_ratio). "ignore the noise" or "film
grain is fine" ignores that one defect; the quality judges keep checking the rest.

There is no ``safety`` aspect on purpose: a rubric cannot switch off the safety gate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from imagejury.judges.taxonomy import ASPECT_OF_WORD, ASPECTS
from imagejury.judges.types import Directives
from imagejury.judges.vocabulary import article, tokenize

_ASPECT_OF: dict[str, str] = ASPECT_OF_WORD

_IGNORE = re.compile(
    r"\b(?:ignore|disregard|overlook|skip|"
    r"(?:do not|don'?t|no need to|need not|you can) (?:care about|worry about|judge|evaluate|penali[sz]e|check|consider|score|grade|mind|assess)|"
    r"(?:do not|don'?t) (?:be )?(?:concerned|bothered) (?:about|with)|"
    r"(?:do not|don'?t) take (?:into account )?)"
    r"\s+(?:about\s+)?(?:the\s+|any\s+|its\s+|their\s+)?"
    r"(?P<x>[^,.;!?]+?)(?=\s+(?:and|but|while|then)\s+(?:please\s+)?(?:prioriti|focus|pay|emphasi|care|ignore|disregard|don|do not|skip|make|ensure|check)|\s*[,.;!?]|$)",
    re.I,
)
_IGNORE_POST = re.compile(
    r"(?:^|\b(?:the|and|but)\s+)(?P<x>[\w' -]+?)\s+(?:does not|doesn'?t|do not|don'?t|is not|isn'?t|are not|aren'?t) "
    r"(?:matter|important|relevant|a concern|an issue|count)\b|"
    r"(?P<y>[\w' -]+?)\s+(?:is|are) (?:irrelevant|unimportant|not important|fine|ok|okay|acceptable|tolerable|"
    r"not a problem|no problem|intended|on purpose|deliberate)\b",
    re.I,
)
_PRIORITISE = re.compile(
    r"\b(?:prioriti[sz]e|focus(?: mainly| mostly| primarily| especially)? on|pay (?:special |close |particular |extra )?attention to|"
    r"emphasi[sz]e|care (?:most |mostly )?about|weight(?: up)?|above all(?:,)? check|most importantly(?:,)? check)"
    r"\s+(?:on\s+)?(?:the\s+|its\s+|their\s+)?"
    r"(?P<x>[^,.;!?]+?)(?=\s+(?:and|but|while|then)\s+(?:please\s+)?(?:prioriti|focus|pay|emphasi|care|ignore|disregard|don|do not|skip|make|ensure|check)|\s*[,.;!?]|$)",
    re.I,
)
_PRIORITISE_POST = re.compile(
    r"(?:^|\b(?:the|and|but)\s+)(?P<x>[\w' -]+?)\s+(?:is|are) (?:the )?(?:most important|key|critical|crucial|essential|the priority|paramount|what matters)\b|"
    r"(?P<y>[\w' -]+?)\s+matters? (?:most|the most|above all)\b|"
    r"\bmost important(?:ly)?(?: is|:)\s+(?:the\s+)?(?P<z>[\w' -]+)",
    re.I,
)

_NO_SENTENCE = re.compile(
    r"^(?:there\s+(?:should|must|shall|may|can)\s+be\s+|there\s+(?:is|are)\s+|with\s+|make sure there (?:is|are)\s+|ensure there (?:is|are)\s+)?(?:no|zero)\s+(?P<x>.+)$",
    re.I,
)
_MUST_NOT_HAVE = re.compile(
    r"\b(?:must|should|shall|may|can|does|do|will)\s*(?:not|n't|never)\s+(?:contain|include|have|show|feature|depict|display|use|add)\s+(?:any\s+)?(?P<x>.+)$|"
    r"\b(?:must|should|shall)\s+(?:contain|include|have|show|feature)\s+no\s+(?P<y>.+)$|"
    r"^(?:please\s+)?(?:do not|don'?t|never)\s+(?:include|add|show|use|put|draw|render|depict|generate)\s+(?:any\s+)?(?P<z>.+)$|"
    r"^(?:please\s+)?(?:avoid|exclude|without)\s+(?:any\s+)?(?P<w>.+)$",
    re.I,
)
_FORBIDDEN = re.compile(
    r"^(?:the\s+|any\s+)?(?P<x>.+?)\s+(?:is|are)\s+(?:not allowed|forbidden|prohibited|banned|not permitted|unacceptable)$",
    re.I,
)
_SUBJ_PRED = re.compile(
    r"^(?:please\s+)?(?:make sure (?:that\s+)?|ensure (?:that\s+)?|check (?:that\s+)?)?(?:the\s+|a\s+|an\s+)?(?P<subj>[\w' -]+?)\s+"
    r"(?:must|should|needs? to|has to|have to|shall|is required to|ought to|is|are)\s+(?P<neg>not\s+|never\s+)?"
    r"(?:be|look|appear|stay|remain|seem)?\s*(?P<pred>.+)$",
    re.I,
)
_HAVE = re.compile(
    r"\b(?:must|should|needs? to|has to|have to|shall)\s+(?:clearly\s+)?(?:have|contain|include|show|feature|depict|display)\s+(?P<x>.+)$|"
    r"^(?:please\s+)?(?:make sure (?:that\s+)?(?:there (?:is|are)|it (?:has|shows|includes))|ensure (?:that\s+)?(?:there (?:is|are)|it (?:has|shows|includes))|"
    r"there (?:must|should|needs to) be|include|show|add|it must have|it should have)\s+(?P<y>.+)$",
    re.I,
)
_IMAGE_WORDS = frozenset(
    {"image", "picture", "photo", "output", "it", "result", "render", "generation", "illustration", "artwork"}
)
_SPLIT_ITEMS = re.compile(r"\s*(?:,|\bor\b|\bnor\b|\band\b|/)\s*", re.I)
_LEADING = re.compile(r"^(?:any|the|a|an|some|visible|extra|additional)\s+", re.I)


@dataclass
class RubricCheck:
    """One requirement or prohibition: the caption to test and how it was read."""

    sentence: str
    kind: str  # "requirement" | "prohibition"
    phrase: str  # the caption checked ("a plain white background", "blue shapes")
    base: str | None = None  # the phrase without what is required ("a background"), a foil
    aspect: str | None = None


@dataclass
class Rubric:
    requirements: list[RubricCheck] = field(default_factory=list)
    prohibitions: list[RubricCheck] = field(default_factory=list)
    directives: Directives = field(default_factory=Directives)
    unread: list[str] = field(default_factory=list)  # sentences not read as a check or directive

    @property
    def checks(self) -> list[RubricCheck]:
        return self.requirements + self.prohibitions


def split_sentences(text: str) -> list[str]:
    """Sentences and bullet items, trimmed; empty ones dropped."""
    parts = re.split(r"(?<=[.!?;])\s+|\n+|\s*•\s*", text or "")
    out = []
    for p in parts:
        p = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", p).strip().rstrip(".!;").strip()
        if p:
            out.append(p)
    return out


def aspect_of(text: str) -> str | None:
    """The first aspect named in a phrase ("the person's face" -> face), or None."""
    low = text.lower()
    for phrase, aspect in _ASPECT_OF.items():
        if " " in phrase and phrase in low:
            return aspect
    for tok, _, _ in tokenize(low):
        if tok in _ASPECT_OF:
            return _ASPECT_OF[tok]
    return None


def aspects_in(text: str) -> list[str]:
    """Every aspect named in a phrase, in order ("background and lighting")."""
    out: list[str] = []
    for part in _SPLIT_ITEMS.split(text):
        a = aspect_of(part)
        if a and a not in out:
            out.append(a)
    return out


# "don't ignore the background", "never skip the face": the ignore verb negated
_NEGATED_BEFORE = re.compile(r"(?:\bnot|\bnever|n['’]t|\bdont|\bcant)\s*$", re.I)
# "ignore everything except the face": what follows the exception is kept, not ignored
_EXCEPT = re.compile(r"\s+(?:except(?:\s+for)?|apart from|other than|besides|save for|but not|but)\s+", re.I)
_LIST_AFTER = re.compile(r"^\s*,\s*(?P<more>[^.;!?]+)$")
_CLAUSE_WORD = re.compile(
    r"\b(?:prioriti|focus|pay|emphasi|care|ignore|disregard|skip|make|ensure|check|must|should|need|"
    r"has|have|is|are|be|do|don|does|not|never|but|except|while|then|please)\w*",
    re.I,
)
_EVERYTHING = re.compile(
    r"^(?:everything|anything|all|all else|everything else|the rest|all aspects|all other aspects)$", re.I
)


def _read_ignore(sentence: str, m: re.Match, d: Directives) -> None:
    """One ignore match: negations and exceptions are read, never turned into their opposite."""
    x = m.group("x").strip()
    if _NEGATED_BEFORE.search(sentence[: m.start()]):
        d.notes.append(f"'{sentence}': a negated ignore ('{m.group(0).strip()}'); nothing is ignored")
        return
    # "ignore the background, text and lighting": x stops at the comma; a plain list of
    # more aspects after it (no verb of its own, so not a new clause) belongs to it too
    more = _LIST_AFTER.match(sentence[m.end() :])
    if more and not _CLAUSE_WORD.search(more.group("more")) and aspects_in(more.group("more")):
        x = f"{x}, {more.group('more').strip()}"
    parts = _EXCEPT.split(x, maxsplit=1)
    head, keep = parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")
    kept = aspects_in(keep) if keep else []
    if _EVERYTHING.match(head):
        if kept:
            d.prioritise.update(kept)
            d.notes.append(
                f"'{sentence}': ignore everything except {', '.join(kept)} — read as prioritise "
                f"{', '.join(kept)}; nothing is switched off"
            )
        else:
            d.notes.append(f"'{sentence}': ignore '{x}' — not a known aspect ({', '.join(ASPECTS)}); recorded only")
        return
    named = aspects_in(head)
    aspects = [a for a in named if a not in kept]
    if aspects:
        d.ignore.update(aspects)
        d.notes.append(f"'{sentence}': ignore {', '.join(aspects)}")
    elif named:
        d.notes.append(f"'{sentence}': the exception names the same aspect ({', '.join(named)}); nothing is ignored")
    else:
        d.notes.append(f"'{sentence}': ignore '{x}' — not a known aspect ({', '.join(ASPECTS)}); recorded only")


def _read_directives(sentence: str, d: Directives) -> bool:
    """Add the sentence's directives to ``d``; True if it was a directive sentence."""
    found = False
    for regex, target, verb in ((_IGNORE, d.ignore, "ignore"), (_PRIORITISE, d.prioritise, "prioritise")):
        for m in regex.finditer(sentence):
            found = True
            if verb == "ignore":
                _read_ignore(sentence, m, d)
                continue
            x = m.group("x").strip()
            aspects = aspects_in(x)
            if aspects:
                target.update(aspects)
                d.notes.append(f"'{sentence}': {verb} {', '.join(aspects)}")
            else:
                d.notes.append(f"'{sentence}': {verb} '{x}' — not a known aspect ({', '.join(ASPECTS)}); recorded only")
    for regex, target, verb in ((_IGNORE_POST, d.ignore, "ignore"), (_PRIORITISE_POST, d.prioritise, "prioritise")):
        for m in regex.finditer(sentence):
            x = next(g for g in m.groups() if g)
            aspects = aspects_in(x)
            if aspects:
                found = True
                target.update(aspects)
                d.notes.append(f"'{sentence}': {verb} {', '.join(aspects)}")
    return found


def _items(x: str) -> list[str]:
    out = []
    for part in _SPLIT_ITEMS.split(x.strip().rstrip(".!")):
        part = _LEADING.sub("", part.strip()).strip()
        part = re.sub(
            r"\s+(?:allowed|please|at all|anywhere|whatsoever|in the image|in the picture|visible)$",
            "",
            part,
            flags=re.I,
        )
        if part:
            out.append(part)
    return out


def _with_article(phrase: str) -> str:
    p = phrase.strip()
    if (
        re.match(r"^(?:a|an|the|some|one|two|three|four|five|\d+)\b", p, re.I)
        or p.endswith("s")
        and not p.endswith("ss")
    ):
        return p
    return f"{article(p)} {p}"


def _read_check(sentence: str) -> list[RubricCheck]:
    s = sentence.strip()
    low = s.lower()
    # prohibitions first: "must not", "no ...", "avoid ..."
    m = _NO_SENTENCE.match(s) or _MUST_NOT_HAVE.search(s) or _FORBIDDEN.match(s)
    if m:
        x = next(g for g in m.groups() if g)
        return [RubricCheck(s, "prohibition", item, aspect=aspect_of(item)) for item in _items(x)]
    m = _HAVE.search(s)
    if m:
        x = next(g for g in m.groups() if g)
        return [RubricCheck(s, "requirement", _with_article(item), aspect=aspect_of(item)) for item in _items(x)]
    m = _SUBJ_PRED.match(s)
    if (
        m
        and not re.search(r"\b(?:is|are)\b", m.group(0)[: m.start("pred")])
        or (m and re.search(r"\b(?:must|should|needs?|has to|have to|shall|required|ought)\b", low))
    ):
        subj = m.group("subj").strip()
        pred = m.group("pred").strip().rstrip(".")
        if not pred or len(pred.split()) > 8:
            return []
        neg = bool(m.group("neg"))
        subj_words = subj.lower().split()
        if subj_words and subj_words[-1] in _IMAGE_WORDS:
            phrase = _with_article(pred) if re.match(r"^(?:a|an)\b", pred, re.I) else f"{article(pred)} {pred} image"
            base = "an image"
        else:
            phrase = (
                f"{article(pred)} {pred} {subj}" if not pred.lower().startswith(("a ", "an ")) else f"{subj}: {pred}"
            )
            base = f"{article(subj)} {subj}"
        if neg:
            return [
                RubricCheck(
                    s,
                    "prohibition",
                    phrase.removeprefix("a ").removeprefix("an "),
                    aspect=aspect_of(subj) or aspect_of(pred),
                )
            ]
        return [RubricCheck(s, "requirement", phrase, base=base, aspect=aspect_of(subj) or aspect_of(pred))]
    return []


def parse_rubric(instructions: str | None) -> Rubric:
    """Read every sentence of the rubric; see the module docstring for the forms."""
    rubric = Rubric()
    for sentence in split_sentences(instructions or ""):
        is_directive = _read_directives(sentence, rubric.directives)
        if is_directive:
            continue
        checks = _read_check(sentence)
        if not checks:
            rubric.unread.append(sentence)
            rubric.directives.notes.append(f"'{sentence}': not read as a check or a directive; recorded only")
            continue
        for c in checks:
            (rubric.requirements if c.kind == "requirement" else rubric.prohibitions).append(c)
            rubric.directives.notes.append(f"'{sentence}': {c.kind} — checks '{c.phrase}'")
    return rubric


def parse_directives(instructions: str | None) -> Directives:
    """The evaluator's entry point: ignore / prioritise aspects and a note per sentence."""
    return parse_rubric(instructions).directives
