"""A project as its YAML declares it: the schema of the YAML and its file:line errors, the SQL
rules it may hold, the names it maps source columns to, the paths it may name."""
