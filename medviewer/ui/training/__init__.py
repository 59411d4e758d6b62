"""Fine-tuning UI: run dialog and controller, live plot, model versions, review queue, effort."""
