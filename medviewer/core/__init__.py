"""Pure-numpy domain model: geometry, volumes, windowing, session state."""
