"""The knowledge base: which files are read (`sources`), their text (`extract`), embeddings and
their cache, keywords, the index and its retriever, the index shared through Redis and the
follower that keeps a worker on it, and the ingest that builds it. `data/` ships the tokenizer.

Knows nothing of turns, answers or platforms.
"""
