"""The codecs, one module each, on the shared `Codec` base."""
