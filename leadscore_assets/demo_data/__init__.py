"""Demo-data generators: realistic exports with a known probability model per source."""
