"""Batch entry points: python -m jobs.train / jobs.score / jobs.evaluate / jobs.bench."""
