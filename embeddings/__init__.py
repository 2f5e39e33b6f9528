"""Sentence embeddings for passages and queries."""

from embeddings.encoder import PACKAGED_MODEL_NAMES, Embedder, resolve_model_path

__all__ = ["PACKAGED_MODEL_NAMES", "Embedder", "resolve_model_path"]
