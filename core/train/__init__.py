"""Training Tressel's own models: recipes, stages, evaluation."""
