"""Feedback on answers and the records of what was asked: votes, retention, the report."""
