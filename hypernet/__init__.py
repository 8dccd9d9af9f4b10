"""tokenshift.hypernet."""
