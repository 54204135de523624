"""Rate–distortion training with checkpoints, automatic resume and export.

Loss = bits per pixel + λ · D, with D the MSE on the 0..255 scale or
1 − MS-SSIM. The run lives in `train_dir`: `train_config.json` (fixed at the
first start), `checkpoints/` (model, optimizer, step, wall time; written every
few minutes and on SIGINT/SIGTERM), `logs/` (TensorBoard) and, once
`max_steps` is reached, `model/`: the frozen model that `--model PATH` loads.
"""

import inspect
import json
import math
import os
import signal
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfc_codecs import data, model_dir, registry
from tfc_codecs.codecs.base import Codec
from tfc_codecs.codecs.rnn import BINARIZATIONS, ITERATION_LOSSES
from tfc_codecs.errors import CodecError
from tfc_codecs.layers import precision

DISTORTIONS = ("mse", "ms-ssim")
QUANTIZATIONS = ("noise", "mixed")  # See codecs/transform_coding.py.
DENSITY_FITS = ("noisy", "rounded")  # Likewise.

MS_SSIM_MIN_PATCH = 176  # five MS-SSIM scales with an 11x11 window


def _lr_at(step: int, max_steps: int, base: float, decay_start: float,
           warmup_steps: int = 0) -> float:
  """A linear warm-up over the run's first `warmup_steps` steps, constant,
  then a cosine decay to base/10 over the last part of the run."""
  if step < warmup_steps:
    return base * (step + 1) / (warmup_steps + 1)
  start = int(decay_start * max_steps)
  if step < start or max_steps <= start:
    return base
  progress = min(1., (step - start) / (max_steps - start))
  return base * (0.1 + 0.9 * 0.5 * (1. + math.cos(math.pi * progress)))


def _fixed_config(train_dir: str, config: Dict[str, Any],
                  init_from: Optional[str], cls) -> Dict[str, Any]:
  """Stores the run's model config, with every option of codec class `cls`
  (and the model it started from), at the first start; on resume returns the
  stored one, checking that the options given now (model options may be left
  out or repeated) agree with it. An option newer than the stored run takes
  the value its absence implies (`stored_config_defaults`)."""
  path = os.path.join(train_dir, "train_config.json")
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    stored_model = {**cls.stored_config_defaults, **stored.get("model_config", {})}
    stored["model_config"] = stored_model
    if (any(stored.get(k) != v for k, v in config.items() if k != "model_config")
        or any(stored_model.get(k) != v for k, v in config["model_config"].items())):
      raise CodecError(
          f"{train_dir} holds a run with a different model ({stored}); "
          "use a new --train_dir")
    return stored
  os.makedirs(train_dir, exist_ok=True)
  config = dict(config, init_from=init_from,
                model_config={**_constructor_defaults(cls), **config["model_config"]})
  with open(path, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  return config


def _last_progress(train_dir: str) -> Optional[Dict[str, float]]:
  """The last logged training metrics of a run (averaged over `log_every`)."""
  try:
    with open(os.path.join(train_dir, "progress.jsonl")) as f:
      last = json.loads(f.read().splitlines()[-1])
  except (OSError, IndexError, ValueError):
    return None
  return {k: round(last[k], 4) for k in ("step", "loss", "bpp", "psnr")}


def _trim_progress(train_dir: str, step: int) -> None:
  """Drops the logged metrics past `step`: a resumed run retrains those steps."""
  path = os.path.join(train_dir, "progress.jsonl")
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except OSError:
    return
  kept = [line for line in lines if json.loads(line)["step"] <= step]
  if len(kept) < len(lines):
    with open(path + ".tmp", "w") as f:
      f.write("".join(line + "\n" for line in kept))
    os.replace(path + ".tmp", path)


def _constructor_options(cls) -> set:
  """Names of the options a codec class's constructors (its MRO) accept."""
  names = set()
  for klass in cls.__mro__:
    if "__init__" in vars(klass):
      names.update(p.name for p in inspect.signature(klass.__init__).parameters.values()
                   if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self")
  return names


def _constructor_defaults(cls) -> Dict[str, Any]:
  """The default values of a codec class's constructor options (its codec bases')."""
  defaults = {}
  for klass in reversed(cls.__mro__):
    if issubclass(klass, Codec) and "__init__" in vars(klass):
      defaults.update({p.name: p.default for p in inspect.signature(
          klass.__init__).parameters.values() if p.default is not p.empty})
  return defaults


def _inherited_config(source, target_class) -> Dict[str, Any]:
  """The source model's options that the target codec also takes, except
  options newer than some stored models (their weights are converted)."""
  accepted = _constructor_options(target_class) - set(target_class.stored_config_defaults)
  return {k: v for k, v in source.config.items() if k in accepted}


def _shared_parts(model) -> Dict[str, Any]:
  """A codec's named parts: its sublayers and own weights, by attribute name
  (`cells/0`, `cells/1`, ... for the items of a list such as the rnn's cells)."""
  parts = {}
  for name, value in vars(model).items():
    if name.startswith("_"):
      continue
    items = (list(enumerate(value)) if isinstance(value, (list, tuple))
             else [(None, value)])
    for index, item in items:
      if isinstance(item, (tf.Module, tf.Variable)):
        parts[name if index is None else f"{name}/{index}"] = item
  return parts


def _part_variables(part) -> list:
  """The trainable variables of a part: itself if it is a weight."""
  return [part] if isinstance(part, tf.Variable) else list(part.trainable_variables)


def _copy_weights(source, target, name: str) -> None:
  """Copies every part (transform, entropy model, gains) the two codecs share
  by attribute name, e.g. hyperprior -> hyperprior-vr (everything; the gains
  keep their initial values) or hyperprior-vr -> factorized-vr (the transforms
  and gains; the factorized prior starts afresh). The target codec's
  `carry_over` adapts them, e.g. gains to other λ values."""
  source_parts, target_parts = _shared_parts(source), _shared_parts(target)
  shared = sorted(part for part in set(source_parts) & set(target_parts)
                  if type(source_parts[part]) is type(target_parts[part]))
  pairs = []
  for part in shared:
    t_vars = _part_variables(target_parts[part])
    s_vars = target.carry_over(part, [v.numpy() for v in _part_variables(source_parts[part])],
                               source)
    if [tuple(v.shape) for v in s_vars] != [tuple(v.shape) for v in t_vars]:
      raise CodecError(f"--init_from {name} does not match the model's shapes ({part})")
    pairs += zip(s_vars, t_vars)
  if not pairs:
    raise CodecError(f"cannot initialize {target.codec_name} from a "
                     f"{source.codec_name} model: they share no weights")
  for s, t in pairs:
    t.assign(s)


def train(model_type: str, lmbda: Optional[float], train_dir: str, *,
          train_glob: Optional[str] = None, tfds_dataset: Optional[str] = None,
          distortion: str = "mse", patch_size: int = 256, batch_size: int = 8,
          max_steps: int = 100000, learning_rate: float = 1e-4,
          decay_start: float = 0.8, warmup_steps: int = 0, clip_norm: float = 0.,
          min_scale: float = 1., init_from: Optional[str] = None,
          model_config: Optional[Dict[str, Any]] = None,
          checkpoint_minutes: float = 5., log_every: int = 100,
          quantization: str = "noise", density_fit: str = "noisy",
          conv_dtype: str = "float32", iteration_loss: str = "l1",
          binarization: str = "stochastic", seed: Optional[int] = None, printer=print) -> str:
  """Trains (or resumes) a run and returns the path of the exported model."""
  cls = registry.codec_class(model_type)
  if lmbda is None and cls.needs_lambda:
    raise CodecError(f"--lambda is required for {model_type}")
  if distortion not in DISTORTIONS:
    raise CodecError(f"--distortion must be one of {DISTORTIONS}")
  if distortion == "ms-ssim" and patch_size < MS_SSIM_MIN_PATCH:
    raise CodecError(f"--distortion ms-ssim needs --patch_size >= {MS_SSIM_MIN_PATCH}")
  if patch_size <= 0 or patch_size % cls.downsampling:
    raise CodecError(f"--patch_size must be a positive multiple of {cls.downsampling} "
                     f"for {model_type}")
  if warmup_steps < 0:
    raise CodecError("--warmup_steps must be >= 0")
  if quantization not in QUANTIZATIONS:
    raise CodecError(f"--quantization must be one of {QUANTIZATIONS}")
  if quantization != "noise" and not hasattr(cls, "quantization"):
    raise CodecError(f"--quantization {quantization} applies to the transform codecs, "
                     f"not {model_type}")
  if density_fit not in DENSITY_FITS:
    raise CodecError(f"--density_fit must be one of {DENSITY_FITS}")
  if density_fit != "noisy" and not hasattr(cls, "density_fit"):
    raise CodecError(f"--density_fit {density_fit} applies to the transform codecs, "
                     f"not {model_type}")
  if iteration_loss not in ITERATION_LOSSES:
    raise CodecError(f"--iteration_loss must be one of {ITERATION_LOSSES}")
  if iteration_loss != "l1" and not hasattr(cls, "iteration_loss"):
    raise CodecError(f"--iteration_loss {iteration_loss} applies to rnn, not {model_type}")
  if binarization not in BINARIZATIONS:
    raise CodecError(f"--binarization must be one of {BINARIZATIONS}")
  if binarization != "stochastic" and not hasattr(cls, "binarization"):
    raise CodecError(f"--binarization {binarization} applies to rnn, not {model_type}")
  if conv_dtype not in precision.CONV_DTYPES:
    raise CodecError(f"--conv_dtype must be one of {precision.CONV_DTYPES}")
  if seed is not None:
    tf.random.set_seed(seed)

  init_codec = None
  if init_from and tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints")):
    printer(f"{train_dir} holds a checkpoint: resuming it "
            "(--init_from applies to new runs only)")
  elif init_from:
    from tfc_codecs import api  # pylint: disable=import-outside-toplevel
    init_codec = api.load(init_from).net
    inherited = _inherited_config(init_codec, cls)
    if "lambdas" in (model_config or {}):
      inherited.pop("default_quality", None)  # Chosen anew for the new λ values.
    model_config = {**inherited, **(model_config or {})}
  config = _fixed_config(train_dir, dict(
      model_type=model_type, model_config=model_config or {}, lmbda=lmbda,
      distortion=distortion), init_from, cls)
  try:
    with precision.conv_dtype(conv_dtype):
      model = cls(**config["model_config"])
  except (TypeError, ValueError) as e:
    raise CodecError(f"bad {model_type} model options: {e}") from None
  if init_codec is not None:
    _copy_weights(init_codec, model, init_from)
  if quantization != "noise":
    model.quantization = quantization
  if density_fit != "noisy":
    model.density_fit = density_fit
  if iteration_loss != "l1":
    model.iteration_loss = iteration_loss
  if binarization != "stochastic":
    model.binarization = binarization

  optimizer = tf.keras.optimizers.Adam(
      learning_rate=learning_rate, global_clipnorm=clip_norm or None)
  optimizer.build(model.trainable_variables)  # Slots must exist before restore.
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  wall_seconds = tf.Variable(0., dtype=tf.float64, trainable=False)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step,
                                   wall_seconds=wall_seconds)
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(train_dir, "checkpoints"), max_to_keep=2)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    printer(f"resumed from {manager.latest_checkpoint} at step {int(step)}")
    _trim_progress(train_dir, int(step))

  variables = model.trainable_variables

  @tf.function
  def train_step(x):
    with tf.GradientTape() as tape:
      loss, metrics = model.training_loss(x, lmbda, distortion)
    grads = tape.gradient(loss, variables)
    grad_norm = tf.linalg.global_norm(grads)
    finite = tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)

    def apply():
      optimizer.apply_gradients(zip(grads, variables))
      return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))
    return dict(loss=loss, grad_norm=grad_norm, finite=tf.cast(finite, tf.float32),
                **metrics)

  stop = {"signal": None}

  def request_stop(signum, _):
    stop["signal"] = signum

  previous_handlers = {s: signal.signal(s, request_stop)
                       for s in (signal.SIGINT, signal.SIGTERM)}
  writer = tf.summary.create_file_writer(os.path.join(train_dir, "logs"))
  history = []
  try:
    if int(step) < max_steps:
      dataset = data.training_dataset(
          patch_size, batch_size, train_glob=train_glob,
          tfds_dataset=tfds_dataset, min_scale=min_scale, seed=seed)
      last_save = last_log = time.monotonic()
      steps_at_log = int(step)
      session_start = time.monotonic()
      wall_at_start = float(wall_seconds)
      for batch in dataset:
        if int(step) >= max_steps or stop["signal"] is not None:
          break
        optimizer.learning_rate.assign(
            _lr_at(int(step), max_steps, learning_rate, decay_start, warmup_steps))
        metrics = {k: float(v) for k, v in train_step(batch).items()}
        step.assign_add(1)
        wall_seconds.assign(wall_at_start + time.monotonic() - session_start)
        history = (history + [metrics])[-log_every:]
        now = time.monotonic()
        if int(step) % log_every == 0 or int(step) == max_steps:
          mean = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
          rate = (int(step) - steps_at_log) / max(now - last_log, 1e-9)
          printer(f"step {int(step)}  loss {mean['loss']:.4f}  bpp {mean['bpp']:.4f}"
                  f"  psnr {mean['psnr']:.2f}  |g| {mean['grad_norm']:.2f}"
                  f"  lr {float(optimizer.learning_rate):.2e}  {rate:.2f} steps/s"
                  + ("" if mean["finite"] == 1 else "  (skipped non-finite steps)"))
          with open(os.path.join(train_dir, "progress.jsonl"), "a") as f:
            f.write(json.dumps(dict(step=int(step), **mean)) + "\n")
          with writer.as_default(step=int(step)):
            for key, value in mean.items():
              tf.summary.scalar(key, value)
          writer.flush()
          last_log, steps_at_log = now, int(step)
        if now - last_save > 60 * checkpoint_minutes:
          manager.save(checkpoint_number=int(step))
          last_save = now
      manager.save(checkpoint_number=int(step))
  finally:
    for s, handler in previous_handlers.items():
      signal.signal(s, handler)
  if int(step) < max_steps:
    printer(f"stopped at step {int(step)}; run the same command to resume")
    raise SystemExit(130)

  final = _last_progress(train_dir)
  model_dir.round_weights(model)
  model.freeze()
  provenance = dict(
      command=" ".join(["tfc_codecs"] + sys.argv[1:]),
      data=train_glob or f"tfds:{tfds_dataset}", lmbda=lmbda,
      distortion=distortion, quantization=quantization, density_fit=density_fit,
      conv_dtype=conv_dtype, iteration_loss=iteration_loss, binarization=binarization,
      steps=int(step),
      patch_size=patch_size, batch_size=batch_size, learning_rate=learning_rate,
      warmup_steps=warmup_steps,
      wall_seconds=round(float(wall_seconds), 1),
      final_train_metrics=final, init_from=config.get("init_from"))
  out = os.path.join(train_dir, "model")
  fingerprint = model_dir.save(model, out, provenance, overwrite=True)
  printer(f"wrote model {out} (fingerprint {fingerprint}) after {int(step)} steps")
  return out
