"""tokenshift.models."""
