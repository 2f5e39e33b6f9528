from __future__ import annotations

from qa.ingest import Ingestor
from qa.retrieve import HybridRetriever, reciprocal_rank_fusion
from qa.store import IndexStore


def test_rrf_hand_computed() -> None:
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == 1 / 61 + 1 / 62
    assert fused[3] == 1 / 63 + 1 / 61
    assert fused[2] == 1 / 62
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)] == [1, 3, 2]


def test_hybrid_retrieval_uses_both_rankers(tmp_path, fake_settings, fake_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Zebras\n\nThe zebra herd crossed the river at dawn.", "utf-8")
    (folder / "b.txt").write_text("Budget\n\nThe finance minister announced the budget.", "utf-8")
    (folder / "c.txt").write_text("Chess\n\nThe grandmaster won the chess tournament.", "utf-8")
    Ingestor(fake_settings, fake_embedder).ingest([folder], progress=False)
    snap = IndexStore(fake_settings.index_dir).load()
    query = "When did the zebra herd cross?"
    vector = fake_embedder.encode_query(query)
    for mode in ("hybrid", "dense", "lexical"):
        passages = HybridRetriever(snap, mode=mode).retrieve(query, vector, top_k=2)
        assert passages[0].title == "Zebras", mode
        assert passages[0].score >= passages[-1].score
    hybrid = HybridRetriever(snap).retrieve(query, vector, top_k=3)
    top = hybrid[0]
    assert top.dense_score is not None and top.lexical_score is not None
    assert top.text == snap.documents[top.doc_id].text[top.start : top.end]
    # a query with no known words still gets dense results, and lexical returns none
    assert HybridRetriever(snap, mode="lexical").retrieve("qwxz", None, top_k=2) == []
