"""After go-live: drift of new leads against the champion's training data, whether the grades
convert as promised. (Publishing a run as one unit, which swaps files, is resources/publication.py.)"""
