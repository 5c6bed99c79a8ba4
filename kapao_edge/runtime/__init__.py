"""Camera-app runtime: the image -> poses path over streams, and persistent person ids (tracking)."""
