"""Image enhancement in the app: Tools > Enhance image… (filters previewed on the current
slice before/after, applied to the whole series as a new derived series)."""
