"""The `tfc_codecs` command line: train, compress, decompress and tools.

Subcommands in tensorflow-compression's style (absl app + argparse flags).
Every user error ends in one line `tfc_codecs: error: ...` and exit code 1.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=wrong-import-position
from absl.flags import argparse_flags  # pylint: disable=wrong-import-position

from tfc_codecs.errors import CodecError  # pylint: disable=wrong-import-position

PROG = "tfc_codecs"


def _error(message: str) -> None:
  print(f"{PROG}: error: {message}", file=sys.stderr)


def cmd_train(args) -> int:
  from tfc_codecs import training  # pylint: disable=import-outside-toplevel
  model_config = {}
  if args.num_filters:
    model_config["num_filters"] = args.num_filters
  if args.latent_filters:
    model_config["latent_filters"] = args.latent_filters
  training.train(
      args.model_type, args.lmbda, args.train_dir, train_glob=args.train_glob,
      tfds_dataset=args.tfds_dataset, distortion=args.distortion,
      patch_size=args.patch_size, batch_size=args.batch_size,
      max_steps=args.max_steps, learning_rate=args.learning_rate,
      decay_start=args.decay_start, clip_norm=args.clip_norm,
      min_scale=args.min_scale, init_from=args.init_from,
      model_config=model_config or None,
      checkpoint_minutes=args.checkpoint_minutes, log_every=args.log_every,
      seed=args.seed, printer=lambda line: print(line, flush=True))
  return 0


def _add_train_parser(subparsers) -> None:
  p = subparsers.add_parser(
      "train", help="Train a codec on local images or a TFDS dataset.",
      description="Trains with loss = bpp + lambda * distortion; resumes an "
      "interrupted run in --train_dir and writes TRAIN_DIR/model at the end.")
  p.add_argument("--model_type", required=True, choices=("factorized", "hyperprior"))
  p.add_argument("--lambda", dest="lmbda", type=float, required=True,
                 help="Rate-distortion trade-off (MSE on 0..255: 0.0067 ~ 0.3 bpp).")
  p.add_argument("--train_dir", required=True,
                 help="Run directory: checkpoints, logs, the final model.")
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--train_glob", help="Glob pattern or folder of images.")
  source.add_argument("--tfds_dataset", help="A TFDS dataset available locally.")
  p.add_argument("--distortion", default="mse", choices=("mse", "ms-ssim"))
  p.add_argument("--patch_size", type=int, default=256)
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--max_steps", type=int, default=100000)
  p.add_argument("--learning_rate", type=float, default=1e-4)
  p.add_argument("--decay_start", type=float, default=0.8,
                 help="Fraction of max_steps after which the rate decays to 1/10.")
  p.add_argument("--clip_norm", type=float, default=0.,
                 help="Clip gradients to this global norm (0: off).")
  p.add_argument("--min_scale", type=float, default=1.,
                 help="Random downscaling of the images by [min_scale, 1].")
  p.add_argument("--num_filters", type=int, default=0, help="N (0: codec default).")
  p.add_argument("--latent_filters", type=int, default=0, help="M (0: codec default).")
  p.add_argument("--init_from", help="Start from this shipped model or model dir.")
  p.add_argument("--checkpoint_minutes", type=float, default=5.)
  p.add_argument("--log_every", type=int, default=100)
  p.add_argument("--seed", type=int, default=None)
  p.set_defaults(handler=cmd_train)


def parse_args(argv):
  parser = argparse_flags.ArgumentParser(
      prog=PROG, description="Learned image compression with tensorflow-compression.")
  subparsers = parser.add_subparsers(title="commands", dest="command", required=True)
  _add_train_parser(subparsers)
  return parser.parse_args(argv[1:])


def main(args) -> None:
  try:
    code = args.handler(args)
  except CodecError as e:
    _error(str(e))
    code = 1
  sys.exit(code)


def run() -> None:
  """Console-script entry point."""
  app.run(main, flags_parser=parse_args)


if __name__ == "__main__":
  run()
