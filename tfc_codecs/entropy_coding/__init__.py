"""Entropy coding: the entropy models and the coders that turn symbols into payloads.

    entropy_models  priors and noisy bottlenecks (training), their integer
                    CDF tables, and `make_coder` (coding)
    range_coder     tensorflow-compression's range coder with a bounded escape
                    section (`.tfci` coder 3)
    stock_coder     interleaved rANS in stock TensorFlow ops (`.tfci` coder 5)
    cdf_tables      rows of the quantized CDF tables both coders read
    escapes         how both coders code values outside a table
    byte_strings    byte and bit strings in stock TensorFlow ops
"""
