"""Findings UI: the Findings dock (measured connected components), their axes on the slice, exports."""
