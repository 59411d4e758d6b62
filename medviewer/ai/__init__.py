"""AI: models, inference, saliency (torch imported lazily)."""
