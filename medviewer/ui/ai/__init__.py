"""The AI parts of the UI: AI dock, the single AI worker lane, heat-map overlays, review."""
