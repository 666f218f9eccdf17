"""After go-live: drift of new leads against the champion's training data, whether the grades
convert as promised, and publishing a run as one unit (write-audit-publish)."""
