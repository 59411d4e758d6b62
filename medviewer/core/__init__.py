"""The domain model, numpy and scipy only (no Qt, torch or image readers): geometry, volumes,
label maps and tables, edits and undo, painting and interpolation, case labels, training
manifests, windowing, effort clock and the Session (what is open, the cursor)."""
