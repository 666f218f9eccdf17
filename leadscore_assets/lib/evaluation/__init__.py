"""How good a challenger is and whether it replaces the champion: metrics and plots, the one
evaluation on the untouched test split, the model card, business targets, and the promotion
policy."""
