"""What a source delivers, read before anything is trusted: CSV exports as text (encoding,
delimiter, rows cut short) and the column types inferred for tables that declare none."""
