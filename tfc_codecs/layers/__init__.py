"""Building blocks shared by the codecs."""
