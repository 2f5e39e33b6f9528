"""Question analysis for the heuristic reader: what kind of span answers it, which words matter."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from spacy.tokens import Doc

# Candidate labels are spaCy entity labels plus these span kinds of our own.
NOUN_PHRASE = "NP"
QUOTE = "QUOTE"
PLACE_CHAIN = "PLACE_CHAIN"
CLAUSE = "CLAUSE"

_PLACES = {"GPE": 1.0, "LOC": 1.0, "FAC": 1.0, PLACE_CHAIN: 1.0, "ORG": 0.5}
_TIMES = {"DATE": 1.0, "TIME": 1.0}
_PEOPLE = {"PERSON": 1.0, "ORG": 0.5, "NORP": 0.4}
_COUNTS = {"CARDINAL": 1.0, "QUANTITY": 0.9, "MONEY": 0.6, "PERCENT": 0.6}
_GENERIC = {
    NOUN_PHRASE: 0.5,
    QUOTE: 0.5,
    "ORG": 0.45,
    "PERSON": 0.4,
    "GPE": 0.4,
    "EVENT": 0.5,
    "WORK_OF_ART": 0.5,
    "PRODUCT": 0.45,
    "LAW": 0.45,
    "FAC": 0.4,
    "NORP": 0.4,
    "LOC": 0.4,
}

# focus noun of a "what/which X" question -> expected labels
_FOCUS_TYPES: dict[str, dict[str, float]] = {}
for _words, _types in [
    (
        "country countries nation city cities town province region place venue district location "
        "site continent state county area village capital",
        _PLACES,
    ),
    ("year years date day days month months time decade century season", _TIMES),
    (
        "person people man woman director president chairman chairwoman secretary minister "
        "leader head chief founder author writer singer actor actress player manager coach "
        "spokesman spokeswoman official executive ceo boss winner star",
        _PEOPLE,
    ),
    (
        "organization organisation company firm federation association society group body "
        "agency institution library team club party union bank network channel studio band",
        {"ORG": 1.0, NOUN_PHRASE: 0.4},
    ),
    (
        "theme themes title slogan motto name subtitle sub-theme sub-themes topic song album "
        "film book show programme program",
        {QUOTE: 1.0, "WORK_OF_ART": 1.0, NOUN_PHRASE: 0.6, "EVENT": 0.6, "ORG": 0.4},
    ),
    (
        "number amount percentage percent proportion share rate figure total",
        {"CARDINAL": 0.9, "PERCENT": 1.0, "QUANTITY": 0.9, "MONEY": 0.8},
    ),
    (
        "price cost value salary fee sum revenue revenues profit profits sales",
        {"MONEY": 1.0, "CARDINAL": 0.5},
    ),
    ("language nationality", {"NORP": 1.0, "LANGUAGE": 1.0}),
    (
        "event conference congress competition tournament award prize festival",
        {"EVENT": 1.0, NOUN_PHRASE: 0.6, QUOTE: 0.5, "WORK_OF_ART": 0.5},
    ),
]:
    for _w in _words.split():
        _FOCUS_TYPES[_w] = _types

_WH_WORDS = {"who", "whom", "whose", "what", "which", "when", "where", "why", "how"}
_MONEY_WORDS = {
    "money",
    "cost",
    "costs",
    "pay",
    "paid",
    "price",
    "worth",
    "spend",
    "spent",
    "earn",
    "earned",
    "raise",
    "raised",
    "revenue",
    "profit",
    "sales",
    "fine",
}


@dataclass(slots=True)
class QuestionAnalysis:
    text: str
    wh: str
    expected: dict[str, float]
    focus: str | None
    terms: list[str] = field(default_factory=list)  # stems of the content words


def _focus_noun(doc: Doc, start: int) -> str | None:
    """The first noun after the wh-word: "what theme ...", "which of the countries ..."."""
    for tok in doc[start + 1 : start + 6]:
        if tok.pos_ in ("NOUN", "PROPN") and tok.lower_ not in _WH_WORDS:
            return tok.lower_
        if tok.pos_ in ("VERB", "AUX") and tok.lower_ not in ("of",):
            return None
    return None


def expected_types(doc: Doc) -> tuple[str, dict[str, float], str | None]:
    words = [t.lower_ for t in doc]
    wh_index = next((i for i, w in enumerate(words) if w in _WH_WORDS), None)
    if wh_index is None:
        return "other", dict(_GENERIC), None
    wh = words[wh_index]
    nxt = words[wh_index + 1] if wh_index + 1 < len(words) else ""
    if wh in ("who", "whom", "whose"):
        persons = [e for e in doc.ents if e.label_ == "PERSON"]
        lemmas = {t.lemma_ for t in doc}
        if persons and "be" in lemmas and len(doc) <= 8:  # "Who is Chen Chao?" -> a description
            return wh, {NOUN_PHRASE: 1.0, "ORG": 0.6}, None
        return wh, dict(_PEOPLE), None
    if wh == "when":
        return wh, dict(_TIMES), None
    if wh == "where":
        return wh, dict(_PLACES), None
    if wh == "why":
        return wh, {CLAUSE: 1.0, NOUN_PHRASE: 0.3, "EVENT": 0.4}, None
    if wh == "how":
        if nxt == "many":
            return (
                "how_many",
                {"CARDINAL": 1.0, "QUANTITY": 0.8, "MONEY": 0.3, "PERCENT": 0.3},
                None,
            )
        if nxt == "much":
            rest = set(words[wh_index:])
            if rest & _MONEY_WORDS:
                return "how_much", {"MONEY": 1.0, "CARDINAL": 0.5, "QUANTITY": 0.5}, None
            return (
                "how_much",
                {"MONEY": 0.8, "QUANTITY": 1.0, "CARDINAL": 0.6, "PERCENT": 0.8},
                None,
            )
        if nxt in ("long", "often"):
            return "how_long", {"DATE": 1.0, "TIME": 1.0, "QUANTITY": 0.7, "CARDINAL": 0.4}, None
        if nxt in ("old", "young"):
            return "how_old", {"DATE": 1.0, "CARDINAL": 0.8}, None
        if nxt in ("far", "big", "large", "tall", "high", "heavy"):
            return "how_far", {"QUANTITY": 1.0, "CARDINAL": 0.6}, None
        return "how", {NOUN_PHRASE: 0.6, CLAUSE: 0.5}, None
    # what / which
    focus = _focus_noun(doc, wh_index)
    if focus is not None and focus in _FOCUS_TYPES:
        return wh, dict(_FOCUS_TYPES[focus]), focus
    if re.search(r"\b(what|which) (year|date|day|month|time)\b", doc.text.lower()):
        return wh, dict(_TIMES), None
    return wh, dict(_GENERIC), focus
