"""ragqa: extractive question answering over article collections, with exact cited answers.

The library core: ingest (loaders, cleaning, chunking), index (store, vector_index, lexical),
retrieve, read (readers) and answer (pipeline). The CLI (``qa.cli``), the HTTP API (``api``)
and the evaluator (``eval``) are thin layers over :class:`qa.pipeline.QAPipeline`.
"""

__version__ = "0.1.0"
