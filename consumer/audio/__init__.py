"""Audio and text processing without torch: encoding, reference clips, text normalisation."""
