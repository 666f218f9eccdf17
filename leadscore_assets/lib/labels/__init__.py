"""Who converted: the project's label rule over the validated table, and CRM won/lost files parsed
and resolved to one outcome per lead."""
