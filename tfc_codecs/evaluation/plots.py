"""Rate–distortion plots (bpp vs PSNR-RGB and vs MS-SSIM-RGB in dB)."""

import io
import logging
from typing import Dict, Sequence

import matplotlib

matplotlib.use("Agg")
logging.getLogger("matplotlib").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from tfc_codecs.evaluation import metrics  # pylint: disable=wrong-import-position


def plot_rd(reports: Sequence[Dict], title: str = "Kodak",
            anchors: Sequence[Dict] = ()) -> bytes:
  """PNG bytes of a two-panel R–D figure; anchors are drawn dashed. A curve
  has the same color in both panels, and each panel has its own legend (some
  anchors publish only one of the metrics)."""
  fig, (ax_psnr, ax_ssim) = plt.subplots(1, 2, figsize=(13, 5.5))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  curves = [(r, True) for r in anchors] + [(r, False) for r in reports]
  for index, (report, dashed) in enumerate(curves):
    results = report["results"]
    order = sorted(range(len(results["bpp"])), key=lambda i: results["bpp"][i])
    bpp = [results["bpp"][i] for i in order]
    style = dict(linestyle="--" if dashed else "-", marker="." if dashed else "o",
                 linewidth=1 if dashed else 2, label=report["name"],
                 color=colors[index % len(colors)])
    if "psnr-rgb" in results:
      ax_psnr.plot(bpp, [results["psnr-rgb"][i] for i in order], **style)
    if "ms-ssim-rgb" in results:
      ax_ssim.plot(bpp, [metrics.ms_ssim_db(results["ms-ssim-rgb"][i]) for i in order], **style)
  for ax, label in ((ax_psnr, "PSNR-RGB (dB)"), (ax_ssim, "MS-SSIM-RGB (dB)")):
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(label)
    ax.set_xlim(0, 2)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}: {label}")
    if ax.lines:
      ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=110)
  plt.close(fig)
  return buffer.getvalue()
