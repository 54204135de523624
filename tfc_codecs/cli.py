"""The `tfc_codecs` command line: train, compress, decompress and tools.

Subcommands in tensorflow-compression's style (absl app + argparse flags).
Every user error ends in one line `tfc_codecs: error: ...` and exit code 1.
"""

import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Hide TF C++ start-up noise.
# TensorFlow is imported lazily, after absl's app has started; without this its
# tensors compare by identity inside tf.functions (TF1 behaviour), which
# silently changes tensorflow-compression's GDN (`alpha == 1` is False).
os.environ["TF2_BEHAVIOR"] = "1"

from absl import app  # pylint: disable=wrong-import-position
from absl import logging as absl_logging  # pylint: disable=wrong-import-position
from absl.flags import argparse_flags  # pylint: disable=wrong-import-position

from tfc_codecs.command_files import PROG, output_paths, print_error, run_each  # pylint: disable=wrong-import-position
from tfc_codecs import tfc_stack  # pylint: disable=wrong-import-position
from tfc_codecs.errors import CodecError  # pylint: disable=wrong-import-position
from tfc_codecs.serving import commands as serving_commands  # pylint: disable=wrong-import-position

PIPELINE_WORKERS = 2  # Images in flight in a batch (see `command_files.run_each`).


def cmd_compress(args) -> int:
  from tfc_codecs import api, fileio, images, rate_control  # pylint: disable=import-outside-toplevel
  outputs = output_paths(args.inputs, args.output, ".tfci")
  for target in outputs:
    fileio.check_writable(target, args.overwrite)
  targeted = args.target_bpp is not None or args.target_psnr is not None
  if targeted and args.quality is not None:
    raise CodecError("--quality cannot be combined with --target_bpp/--target_psnr")
  codec = api.load(args.model, args.quality, ops=args.ops, max_pixels=args.max_pixels)

  def work(source, target):
    image, notes = images.read_image(source, codec.max_pixels)
    lines = [(sys.stderr, f"{PROG}: note: {source}: {note}") for note in notes]
    if targeted:
      choice = rate_control.compress_to_target(
          args.model, image, args.target_bpp, args.target_psnr, raw=args.raw, ops=args.ops,
          max_pixels=args.max_pixels)
      data, used = choice.data, choice.codec
    else:
      data, used = codec.compress(image, quality=args.quality, raw=args.raw), codec
    fileio.atomic_write(target, data, args.overwrite)
    if args.verbose:
      from tfc_codecs import container  # pylint: disable=import-outside-toplevel
      from tfc_codecs.evaluation import metrics  # pylint: disable=import-outside-toplevel
      decoded = used.decompress(data)
      height, width = image.shape[:2]
      quality = container.parse(data, used.max_pixels).quality
      ms_ssim = metrics.ms_ssim(image, decoded)
      lines.append((sys.stdout, f"{target}: {height}x{width}, "
                    + (f"quality {quality}, " if quality else "")
                    + f"{len(data)} bytes, "
                    f"{metrics.bits_per_pixel(len(data), height, width):.4f} bpp, "
                    f"PSNR {metrics.psnr(image, decoded):.2f} dB, MS-SSIM "
                    + ("n/a" if ms_ssim is None else
                       f"{ms_ssim:.4f} ({metrics.ms_ssim_db(ms_ssim):.2f} dB)")))
    return lines

  return run_each(args.inputs, outputs, work, args.workers, args.verbose)


def cmd_decompress(args) -> int:
  from tfc_codecs import api, fileio, images  # pylint: disable=import-outside-toplevel
  outputs = output_paths(args.inputs, args.output, ".png")
  for target in outputs:
    fileio.check_writable(target, args.overwrite)

  def work(source, target):
    data = images.read_bytes(source)
    codec = api.load_for(data, args.model, args.max_pixels)
    image = codec.decompress(data, iterations=args.iterations)
    fileio.atomic_write(target, images.encode_png(image), args.overwrite)
    return [(sys.stdout, f"{target}: {image.shape[0]}x{image.shape[1]}")] if args.verbose else []

  return run_each(args.inputs, outputs, work, args.workers, args.verbose)


def _describe(entry) -> str:
  if entry["meta"]["num_qualities"]:
    return f"{entry['name']}, qualities 1-{entry['meta']['num_qualities']}"
  return f"{entry['name']} quality {entry['quality']}"


def cmd_info(args) -> int:
  from tfc_codecs import container, images, zoo  # pylint: disable=import-outside-toplevel
  from tfc_codecs.evaluation import metrics  # pylint: disable=import-outside-toplevel

  def work(source, _):
    data = images.read_bytes(source)
    stream = container.parse(data, args.max_pixels, allow_truncation=True)
    shipped = zoo.find(stream.fingerprint.hex())
    print(f"file:         {source}")
    print(f"format:       .tfci version {stream.version}")
    print(f"coder:        {container.CODER_NAMES[stream.coder]}")
    print(f"codec:        {stream.codec}")
    print(f"model:        {stream.fingerprint.hex()} "
          f"({_describe(shipped) if shipped else 'not a shipped model'})")
    print(f"image size:   {stream.height}x{stream.width}")
    print(f"quality:      {stream.quality or 'the model' + chr(39) + 's only rate'}")
    print(f"payloads:     {len(stream.payloads)} of {stream.declared_payloads}"
          + ("" if stream.complete else " (file cut at a payload boundary)"))
    print(f"sizes:        {', '.join(str(len(p)) for p in stream.payloads)} bytes")
    ends, offset = [], stream.header_bytes() - 8 * len(stream.payloads)
    for payload in stream.payloads:
      offset += len(payload) + 8
      ends.append(str(offset))
    print(f"boundaries:   {', '.join(ends)} (file offset after each payload)")
    print(f"total:        {len(data)} bytes ({stream.header_bytes()} header), "
          f"{metrics.bits_per_pixel(len(data), stream.height, stream.width):.4f} bpp")

  return run_each(args.inputs, args.inputs, work)


def cmd_models(args) -> int:
  from tfc_codecs import zoo  # pylint: disable=import-outside-toplevel
  print(f"{'model':<12} {'quality':>7}  {'codec':<14} {'filters':<10} "
        f"{'kodak bpp':>9} {'PSNR dB':>8} {'MS-SSIM':>8}  fingerprint")
  for entry in zoo.shipped_models():
    meta = entry["meta"]
    kodak = zoo.kodak_results(entry)
    config = meta["config"]
    filters = "/".join(str(config[k]) for k in ("num_filters", "latent_filters", "width")
                       if k in config)
    print(f"{entry['name']:<12} {entry['quality']:>7}  {meta['codec']:<14} "
          f"{filters:<10} {kodak.get('bpp', float('nan')):>9.4f} "
          f"{kodak.get('psnr-rgb', float('nan')):>8.2f} "
          f"{kodak.get('ms-ssim-rgb', float('nan')):>8.4f}  {meta['fingerprint']}"
          + ("  (default)" if entry["default"] and entry["name"] == zoo.DEFAULT_MODEL else ""))
  return 0


def _qualities(text):
  try:
    return [int(q) for q in text.split(",")] if text else None
  except ValueError:
    raise CodecError(f"--quality must be a comma-separated list of integers, not {text!r}") from None


def cmd_evaluate(args) -> int:
  from tfc_codecs.evaluation import classical, evaluate  # pylint: disable=import-outside-toplevel
  qualities = _qualities(args.quality)
  files = evaluate.list_images(args.data)
  from tfc_codecs import fileio  # pylint: disable=import-outside-toplevel
  if args.model in classical.QUALITIES:
    name, description, points = evaluate.classical_points(args.model, qualities)
    output = args.output or f"{name}.json"
    fileio.check_writable(output, args.overwrite)
    report = evaluate.evaluate(name, description, points, files, output,
                               per_image=args.per_image, max_pixels=args.max_pixels)
  else:
    output = args.output or f"{evaluate.learned_name(args.model)}.json"
    fileio.check_writable(output, args.overwrite)
    report = evaluate.evaluate_learned(args.model, qualities, files, output,
                                       per_image=args.per_image, max_pixels=args.max_pixels)
  if args.per_image:
    for row in report["per_image"]:
      print(f"{row['point']:<20} {row['image']:<16} {row['bpp']:.4f} bpp  "
            f"{row['psnr-rgb']:.2f} dB  MS-SSIM {row['ms-ssim-rgb']:.4f}  "
            f"{row['encoding_time']:.3f}/{row['decoding_time']:.3f} s")
  results = report["results"]
  print(f"{'quality':>7} {'bpp':>8} {'PSNR dB':>8} {'MS-SSIM':>8} {'MS-SSIM dB':>10} "
        f"{'enc s':>7} {'dec s':>7}")
  for i, quality in enumerate(results["quality"]):
    print(f"{quality:>7} {results['bpp'][i]:>8.4f} {results['psnr-rgb'][i]:>8.2f} "
          f"{results['ms-ssim-rgb'][i]:>8.4f} {results['ms-ssim-rgb-db'][i]:>10.2f} "
          f"{results['encoding_time'][i]:>7.3f} {results['decoding_time'][i]:>7.3f}")
  print(f"wrote {output}")
  return 0


def cmd_bdrate(args) -> int:
  from tfc_codecs.evaluation import bdrate, results  # pylint: disable=import-outside-toplevel
  ref, test = results.load(args.reference), results.load(args.test)
  for report in (ref, test):
    if args.metric not in report["results"]:
      raise CodecError(f"{report['name']} has no {args.metric} results")
  ref_quality = bdrate.bd_scale(args.metric, ref["results"][args.metric])
  test_quality = bdrate.bd_scale(args.metric, test["results"][args.metric])
  curves = (ref["results"]["bpp"], ref_quality, test["results"]["bpp"], test_quality)
  low, high = bdrate.overlap(ref_quality, test_quality)
  scale = "dB" if args.metric == "psnr-rgb" else "dB of -10log10(1-MS-SSIM)"
  print(f"{test['name']} vs {ref['name']} ({args.metric}): "
        f"BD-rate {bdrate.bd_rate(*curves):+.2f}%, "
        f"BD-{args.metric} {bdrate.bd_quality(*curves):+.4f} {scale} "
        f"(PCHIP over {low:.2f}-{high:.2f} {scale})")
  return 0


def cmd_plot(args) -> int:
  from tfc_codecs import fileio  # pylint: disable=import-outside-toplevel
  from tfc_codecs.evaluation import plots, results  # pylint: disable=import-outside-toplevel
  fileio.check_writable(args.output, args.overwrite)
  reports = [results.load(p) for p in args.inputs]
  anchors = [results.load(p) for p in args.anchors or ()]
  fileio.atomic_write(args.output, plots.plot_rd(reports, args.title, anchors),
                      args.overwrite)
  print(f"wrote {args.output}")
  return 0


def cmd_export(args) -> int:
  from tfc_codecs import export  # pylint: disable=import-outside-toplevel
  path = export.export(args.model, args.export_base, args.version, args.model_name,
                       args.quality, args.ops)
  print(f"wrote {path}")
  print(f"wrote {os.path.join(args.export_base, export.MODELS_CONFIG)}")
  return 0


def cmd_train(args) -> int:
  from tfc_codecs import training  # pylint: disable=import-outside-toplevel
  config = training.TrainConfig(
      **{field.name: getattr(args, field.name) for field in training.flag_fields()})
  for name, (kind, _, _) in training.declared_codec_options().items():
    if getattr(args, name) is not None:
      getattr(config, training.CODEC_OPTION_FIELDS[kind])[name] = getattr(args, name)
  training.train(config, printer=lambda line: print(line, flush=True))
  return 0


def _add_train_parser(subparsers):
  """The train command, its flags added by `_add_train_flags` (which imports
  TensorFlow) only when it runs."""
  return subparsers.add_parser(
      "train", add_help=False, help="Train a codec on local images or a TFDS dataset.",
      description="Trains with loss = bpp + lambda * distortion; resumes an "
      "interrupted run in --train_dir and writes TRAIN_DIR/model at the end.")


def _add_train_flags(p) -> None:
  """One flag per setting of training.TrainConfig and per option the codecs
  declare."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import typing  # pylint: disable=import-outside-toplevel
  from tfc_codecs import registry, training  # pylint: disable=import-outside-toplevel
  p.add_argument("-h", "--help", action="help", help="Show this help and exit.")
  for field in training.flag_fields():
    required = field.default is dataclasses.MISSING
    kind = next((t for t in typing.get_args(field.type) if t is not type(None)), field.type)
    p.add_argument(f"--{field.metadata['flag'] or field.name}", dest=field.name, type=kind,
                   required=required, default=None if required else field.default,
                   choices=field.metadata["choices"] or None,
                   help=field.metadata["help"].replace("%", "%%"))
  group = p.add_argument_group(
      "codec options", "Options of the codecs named in brackets (default: the codec's). "
      "Model options are fixed for a run; training options may change when it resumes.")
  for name, (kind, option, codecs) in training.declared_codec_options().items():
    note = ", ".join(codecs)
    if kind == "training_options":
      note += f"; training option, default {getattr(registry.codec_class(codecs[0]), name)}"
    group.add_argument(f"--{name}", type=option.type, choices=option.choices or None,
                       help=f"{option.help} [{note}]".replace("%", "%%"))
  p.set_defaults(handler=cmd_train)


def _add_workers_flag(parser) -> None:
  parser.add_argument(
      "--workers", type=int, default=PIPELINE_WORKERS,
      help="Images in flight at once when several are given (reading, "
      f"transforms, entropy coding and writing overlap; default {PIPELINE_WORKERS}).")


def _add_max_pixels_flag(parser) -> None:
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  parser.add_argument(
      "--max_pixels", type=int, default=images.MAX_PIXELS,
      help="Refuse images and .tfci files of more pixels than this "
      f"(default {images.MAX_PIXELS}: {images.MAX_PIXELS / 1e6:.0f} megapixels).")


def parse_args(argv):
  parser = argparse_flags.ArgumentParser(
      prog=PROG, description="Learned image compression with tensorflow-compression.")
  subparsers = parser.add_subparsers(title="commands", dest="command", required=True)
  p = subparsers.add_parser("compress", help="Compress images to .tfci files.")
  p.add_argument("inputs", nargs="+", metavar="INPUT", help="Image files (PNG, JPEG, ...).")
  p.add_argument("--model", help="Shipped model name or trained model directory "
                 "(default: channelwise).")
  p.add_argument("--quality", type=int, help="Rate point (higher = better); "
                 "for rnn the number of iterations (1..16, default 8).")
  p.add_argument("--target_bpp", type=float,
                 help="Use the highest quality whose file fits this many bits per pixel.")
  p.add_argument("--target_psnr", type=float,
                 help="Use the lowest quality whose decoded image reaches this PSNR (dB).")
  p.add_argument("--raw", action="store_true",
                 help="rnn only: store the bits without entropy coding.")
  p.add_argument("--ops", choices=("tfc", "stock"),
                 help="Entropy coder: tfc (tensorflow-compression's range coder; the "
                 "default where it is installed) or stock (rANS in stock TensorFlow ops, "
                 "what stock exports write; the default of the plain install, and files "
                 "every install decodes).")
  p.add_argument("--output", help="Output file (one input) or directory.")
  p.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
  p.add_argument("-V", "--verbose", action="store_true",
                 help="Decode the result and print bpp, PSNR and MS-SSIM "
                 "(and, for several inputs, images/s).")
  _add_workers_flag(p)
  _add_max_pixels_flag(p)
  p.set_defaults(handler=cmd_compress)

  p = subparsers.add_parser("decompress", help="Decompress .tfci files to PNG.")
  p.add_argument("inputs", nargs="+", metavar="FILE", help=".tfci files.")
  p.add_argument("--model", help="Model directory, if the file's model is not shipped.")
  p.add_argument("--iterations", type=int,
                 help="rnn only: decode only the first K iterations.")
  p.add_argument("--output", help="Output file (one input) or directory.")
  p.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
  p.add_argument("-V", "--verbose", action="store_true",
                 help="Print each output's size (and, for several inputs, images/s).")
  _add_workers_flag(p)
  _add_max_pixels_flag(p)
  p.set_defaults(handler=cmd_decompress)

  p = subparsers.add_parser("info", help="Show the header of .tfci files.")
  p.add_argument("inputs", nargs="+", metavar="FILE")
  _add_max_pixels_flag(p)
  p.set_defaults(handler=cmd_info)

  p = subparsers.add_parser("models", help="List the shipped models.")
  p.set_defaults(handler=cmd_models)

  train_parser = _add_train_parser(subparsers)

  p = subparsers.add_parser(
      "export", help="Export a model as a SavedModel for TF Serving.",
      description="Writes EXPORT_BASE/<model_name>/<version>/ (signatures "
      "serving_default, compress_image, decompress, decompress_image) and "
      "EXPORT_BASE/models.config.")
  p.add_argument("--model", help="Shipped model name or trained model directory "
                 "(default: channelwise).")
  p.add_argument("--quality", type=int, help="Rate point of a fixed-rate shipped family.")
  p.add_argument("--export_base", required=True, help="TF Serving model base directory.")
  p.add_argument("--model_name", help="Name to serve it under (default: the model's).")
  p.add_argument("--version", type=int, help="Version number (default: the next free one).")
  p.add_argument("--ops", choices=("stock", "tfc"), default="stock",
                 help="Entropy coder in the graphs: stock (rANS in stock TensorFlow ops; "
                 "runs on an unmodified tensorflow_model_server) or tfc "
                 "(tensorflow-compression's range-coder custom ops). Default: stock.")
  p.set_defaults(handler=cmd_export)
  serving_commands.add_parsers(subparsers)

  p = subparsers.add_parser(
      "evaluate", help="Rate-distortion of a codec on a folder of images.",
      description="Runs compress -> file -> decompress on every image; writes "
      "CompressAI's results schema. Resumes an interrupted run.")
  p.add_argument("--model", default=None, help="Shipped model name, model "
                 "directory, or a Pillow codec: jpeg-420, jpeg-444, webp, avif, jpeg2000.")
  p.add_argument("--quality", help="Comma-separated qualities (default: all).")
  p.add_argument("--data", required=True, help="Folder of images (e.g. Kodak).")
  p.add_argument("--output", help="Results JSON (default: NAME.json).")
  p.add_argument("--per_image", action="store_true", help="Also report every image.")
  p.add_argument("--overwrite", action="store_true")
  _add_max_pixels_flag(p)
  p.set_defaults(handler=cmd_evaluate)

  p = subparsers.add_parser("bdrate", help="Bjontegaard delta rate of TEST vs REF.")
  p.add_argument("reference", metavar="REF", help="Results JSON or TFC table.")
  p.add_argument("test", metavar="TEST", help="Results JSON or TFC table.")
  p.add_argument("--metric", default="psnr-rgb", choices=("psnr-rgb", "ms-ssim-rgb"))
  p.set_defaults(handler=cmd_bdrate)

  p = subparsers.add_parser("plot", help="Plot rate-distortion curves.")
  p.add_argument("inputs", nargs="+", metavar="RESULTS", help="Results JSON files.")
  p.add_argument("--anchors", nargs="*", help="Published results to draw dashed "
                 "(CompressAI JSON or TFC tables, e.g. from ../shared/anchors).")
  p.add_argument("--output", required=True, help="PNG file.")
  p.add_argument("--title", default="Kodak")
  p.add_argument("--overwrite", action="store_true")
  p.set_defaults(handler=cmd_plot)
  if parser.parse_known_args(argv[1:])[0].command == "train":
    try:
      tfc_stack.require("train")
    except CodecError as e:
      print_error(str(e))
      sys.exit(1)
    _add_train_flags(train_parser)
  return parser.parse_args(argv[1:])


def _import_tensorflow_quietly() -> None:
  """Imports TensorFlow and creates its CPU device with native stderr sent to
  /dev/null: newer TensorFlow logs start-up lines there before
  TF_CPP_MIN_LOG_LEVEL applies, which would bury our one-line messages; its
  Python INFO logs are turned off too."""
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      tf.zeros([])
  finally:
    os.dup2(saved, 2)
    os.close(saved)
  absl_logging.set_verbosity(absl_logging.WARNING)  # e.g. SavedModel loading's INFO lines.


def main(args) -> None:
  if args.handler not in (cmd_compress, cmd_decompress):
    gc.enable()  # Only these start up without collection (see `run`, `command_files.run_each`).
  if args.handler not in (cmd_models, cmd_bdrate, cmd_plot):
    _import_tensorflow_quietly()
  try:
    code = args.handler(args)
  except CodecError as e:
    print_error(str(e))
    code = 1
  except Exception as e:  # pylint: disable=broad-except
    if os.environ.get("TFC_CODECS_DEBUG"):
      raise
    message = str(e).strip().splitlines()
    print_error(f"internal error ({type(e).__name__}: {message[0] if message else ''}); "
           "set TFC_CODECS_DEBUG=1 for a traceback")
    code = 2
  sys.exit(code)


def run() -> None:
  """Console-script entry point."""
  # No cyclic garbage collection while TensorFlow imports and the model loads
  # (a few hundred ms of full collections of a heap of import-time objects);
  # `command_files.run_each` freezes those objects and turns collection back
  # on, `main` turns it on at once for the other commands (training, serving, ...).
  gc.disable()
  app.run(main, flags_parser=parse_args)


if __name__ == "__main__":
  run()
