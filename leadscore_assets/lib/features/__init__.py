"""Model inputs: the feature frame (personal data only as presence, never values), its splits and
preprocessing, the data profile, and the single-feature leakage screen."""
