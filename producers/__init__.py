"""Event producers: ``python -m producers.synthetic`` feeds the pipeline with known ground truth."""
