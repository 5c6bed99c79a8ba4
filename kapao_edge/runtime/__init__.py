"""The one image -> poses path (PosePipeline), streams over live and recorded sources, tracking."""
