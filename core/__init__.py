"""Review-sentiment modeling package: corpora, cleaning, models, metrics and DuckDB storage."""
