"""Video: actions in rendered clips (``video``), drawn by ``video_clips``."""
