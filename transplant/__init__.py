"""tokenshift.transplant."""
