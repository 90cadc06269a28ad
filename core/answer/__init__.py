"""Answering: the pipeline (history, retrieval, the model, the save), the answerers that write
the text (a chat model or retrieval alone), the OpenAI client they stream through, the probe that
times them, and what a follow-up question searches for.

May import `core.store` and `core.knowledge`; knows nothing of turns or platforms.
"""
