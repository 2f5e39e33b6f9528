"""The HTTP API and web page, a thin layer over :class:`qa.pipeline.QAPipeline`."""
