"""mmad-models."""
