"""Operations: health and readiness, Prometheus metrics, and logging (text or JSON, never a
secret, naming the turn a line belongs to).
"""
