"""Quantized CDF tables in tensorflow-compression's concatenated layout.

Both coders (`range_coder.RangeCoder`, `stock_coder.StockCoder`) read the
same tables: rows `[precision, 0, ..., 2**precision]`, concatenated (with
padding) in one vector, one `cdf_offset` per row.
"""

from typing import List, Optional, Tuple

import numpy as np


def split_rows(cdf: np.ndarray) -> List[np.ndarray]:
  """TFC's concatenated CDF vector -> its rows [precision, 0, ..., 2**precision]
  (trailing padding dropped; the precision's sign is kept). Padding repeats a
  row's last value, so no row's precision may equal the previous row's
  2**precision (every table made here has one precision)."""
  cdf = np.asarray(cdf, np.int64).reshape(-1)
  rows, start = [], 0
  while start < cdf.size:
    last = 1 << abs(int(cdf[start]))
    end = start + 2
    while cdf[end] != last:
      end += 1
    rows.append(cdf[start:end + 1])
    start = end + 1
    while start < cdf.size and cdf[start] == last:
      start += 1
  return rows


def table_rows(cdf: np.ndarray, cdf_offset: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, List[np.ndarray], np.ndarray]:
  """(int32 cdf, its rows, int32 offsets, one per row; zeros if None) of a
  coder's tables in TFC's layout; ValueError if the counts differ."""
  cdf = np.asarray(cdf, np.int32)
  rows = split_rows(cdf)
  if cdf_offset is None:
    cdf_offset = np.zeros(len(rows), np.int32)
  cdf_offset = np.asarray(cdf_offset, np.int32).reshape(-1)
  if len(rows) != cdf_offset.size:
    raise ValueError(f"{len(rows)} CDF rows but {cdf_offset.size} offsets")
  return cdf, rows, cdf_offset


def least_bits(row: np.ndarray) -> float:
  """The fewest bits any symbol of a CDF row costs: −log2 of its largest
  probability. A payload shorter than its symbols' sum of these is corrupt."""
  return float(-np.log2(np.diff(row[1:]).max() / float(1 << abs(int(row[0])))))
