"""The label/correction store (SQLite + atomically written NIfTI label files), stroke journals, training manifests built from the store, review queue and effort queries."""
