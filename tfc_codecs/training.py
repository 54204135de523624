"""Rate–distortion training with checkpoints, automatic resume and export.

Loss = bits per pixel + λ · D, with D the MSE on the 0..255 scale or
1 − MS-SSIM. A run is set by one `TrainConfig` and lives in its `train_dir`:
`train_config.json` (what the model is, fixed at the first start),
`checkpoints/` (model, optimizer, step, wall time; written every few minutes
and on SIGINT/SIGTERM), `logs/` (TensorBoard), `progress.jsonl` and, once
`max_steps` is reached, `model/`: the frozen model that `--model PATH` loads,
whose provenance is the config (`TrainConfig.to_dict`) with the run's facts:
the command, steps, wall seconds and final training metrics.
"""

import dataclasses
import inspect
import json
import math
import os
import signal
import sys
import time
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfc_codecs import data, model_dir, registry
from tfc_codecs.codecs.base import Codec
from tfc_codecs.codecs.options import Option
from tfc_codecs.errors import CodecError
from tfc_codecs.layers import precision

DISTORTIONS = Codec.distortions  # What `Codec.training_loss` can minimise.
MS_SSIM_MIN_PATCH = 176  # five MS-SSIM scales with an 11x11 window
# The TrainConfig field that takes each kind of codec option.
CODEC_OPTION_FIELDS = {"model_options": "model_config", "training_options": "training_options"}
FIXED = ("model_type", "lmbda", "distortion")  # With model_config: what a run's model is.


def _flag(help_text: str, flag: Optional[str] = None, choices: Collection[str] = ()
          ) -> Dict[str, Any]:
  """TrainConfig field metadata: the field is the train flag --`flag` (its
  name by default) taking one of `choices`, if given."""
  return dict(help=help_text, flag=flag, choices=choices)


def _setting(default: Any, help_text: str, **flag: Any) -> Any:
  return dataclasses.field(default=default, metadata=_flag(help_text, **flag))


@dataclasses.dataclass
class TrainConfig:
  """A training run's settings. `tfc_codecs train` has one flag per field
  with flag metadata, plus one per codec option (`declared_codec_options`);
  the trained model's provenance records the run's config (`to_dict`)."""
  model_type: str = dataclasses.field(metadata=_flag(
      "Codec to train.", choices=registry.CODECS))
  train_dir: str = dataclasses.field(metadata=_flag(
      "Run directory: checkpoints, logs, the final model; an existing run resumes."))
  lmbda: Optional[float] = _setting(
      None, "Rate-distortion trade-off of the single-rate codecs (MSE on 0..255: 0.0067 ~ "
      "0.4 bpp on Kodak); variable-rate codecs and rnn have none.", flag="lambda")
  train_glob: Optional[str] = _setting(
      None, "Glob pattern or folder of images; several separated by commas.")
  tfds_dataset: Optional[str] = _setting(
      None, "A TFDS dataset, already built (training never downloads), instead of "
      "--train_glob; NAME or NAME:VERSION.")
  tfds_data_dir: Optional[str] = _setting(
      None, "TFDS data directory holding --tfds_dataset (default: TFDS's, "
      "~/tensorflow_datasets).")
  tfds_split: str = _setting(data.TFDS_SPLIT, "Split of --tfds_dataset, e.g. train or train[:90%].")
  tfds_image_key: str = _setting(data.TFDS_IMAGE_KEY, "Image feature of --tfds_dataset (RGB or grayscale).")
  distortion: str = _setting("mse", "Distortion term of the loss.", choices=DISTORTIONS)
  patch_size: int = _setting(256, "Side of the random square crops trained on.")
  batch_size: int = _setting(8, "Crops per step.")
  max_steps: int = _setting(100000, "Steps of the run; then TRAIN_DIR/model is written.")
  learning_rate: float = _setting(1e-4, "Adam's learning rate.")
  decay_start: float = _setting(
      0.8, "Fraction of max_steps after which the rate decays (cosine) to 1/10.")
  warmup_steps: int = _setting(
      0, "Ramp the rate up linearly over the run's first steps: keeps a fresh optimizer "
      "from knocking an --init_from model off course.")
  clip_norm: float = _setting(0., "Clip gradients to this global norm (0: off).")
  min_scale: float = _setting(1., "Random downscaling of the images by [min_scale, 1].")
  init_from: Optional[str] = _setting(
      None, "Start a new run from this shipped model or model directory (the weights "
      "both models share; the model options it has, unless given).")
  conv_dtype: str = _setting(
      "float32", "Compute the convolutions in bfloat16 (weights, nonlinearities and the "
      "saved model stay float32; 1.8x faster hyperprior steps on CPUs with AMX-BF16). May "
      "change between resumes.", choices=precision.CONV_DTYPES)
  checkpoint_minutes: float = _setting(5., "Minutes between checkpoints.")
  log_every: int = _setting(100, "Steps between progress lines (averaged over them).")
  seed: Optional[int] = _setting(None, "Random seed (default: none).")
  # The codec's options (`declared_codec_options`): constructor keywords (a
  # Python caller may give any of them) and training-time attributes.
  model_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
  training_options: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_dict(self) -> Dict[str, Any]:
    """The settings as JSON values (lists for tuples)."""
    return json.loads(json.dumps(dataclasses.asdict(self)))


def flag_fields() -> List[dataclasses.Field]:
  """The TrainConfig fields that are train flags."""
  return [field for field in dataclasses.fields(TrainConfig) if "help" in field.metadata]


def declared_codec_options() -> Dict[str, Tuple[str, Option, List[str]]]:
  """Every option the registered codecs declare, by name: (kind, option, the
  codecs that take it). Codecs that share an option declare the same one."""
  options = {}
  for codec_name, cls in sorted(registry.CODECS.items()):
    for kind in CODEC_OPTION_FIELDS:
      for name, option in cls.declared_options(kind).items():
        known_kind, known, codecs = options.setdefault(name, (kind, option, []))
        if (known_kind, known) != (kind, option):
          raise AssertionError(f"codecs declare option {name!r} differently")
        codecs.append(codec_name)
  return options


def _check_codec_options(config: TrainConfig, cls) -> None:
  """Refuses codec options `cls` does not take and values not allowed."""
  declared = declared_codec_options()
  accepted = dict(model_options=_constructor_options(cls),
                  training_options=set(cls.declared_options("training_options")))
  for kind, field in CODEC_OPTION_FIELDS.items():
    for name, value in getattr(config, field).items():
      if name not in accepted[kind]:
        if name in declared:
          raise CodecError(f"--{name} applies to {', '.join(declared[name][2])}, "
                           f"not {config.model_type}")
        raise CodecError(f"{config.model_type} has no option {name!r}")
      option = cls.declared_options(kind).get(name)
      if option and option.choices and value not in option.choices:
        raise CodecError(f"--{name} must be one of {option.choices}, not {value!r}")


def _check(config: TrainConfig, cls) -> None:
  """Refuses settings that cannot train, before anything is written."""
  for field in flag_fields():
    value, choices = getattr(config, field.name), field.metadata["choices"]
    if choices and value not in choices:
      raise CodecError(f"--{field.metadata['flag'] or field.name} must be one of {choices}, "
                       f"not {value!r}")
  if config.lmbda is None and cls.needs_lambda:
    raise CodecError(f"--lambda is required for {config.model_type}")
  if config.distortion not in cls.distortions:
    raise CodecError(f"{config.model_type} trains with --distortion "
                     f"{' or '.join(cls.distortions)} only")
  if config.distortion == "ms-ssim" and config.patch_size < MS_SSIM_MIN_PATCH:
    raise CodecError(f"--distortion ms-ssim needs --patch_size >= {MS_SSIM_MIN_PATCH}")
  if config.patch_size <= 0 or config.patch_size % cls.downsampling:
    raise CodecError(f"--patch_size must be a positive multiple of {cls.downsampling} "
                     f"for {config.model_type}")
  for name in ("batch_size", "log_every"):
    if getattr(config, name) < 1:
      raise CodecError(f"--{name} must be >= 1")
  if config.warmup_steps < 0:
    raise CodecError("--warmup_steps must be >= 0")
  if not 0 < config.min_scale <= 1:
    raise CodecError("--min_scale must be in (0, 1]")
  _check_codec_options(config, cls)


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


def _fixed_config(config: TrainConfig, cls) -> TrainConfig:
  """The run's config with what its model is (the FIXED settings, every model
  option of codec class `cls` and the model it started from) stored at the
  first start; on resume, the stored ones, after checking that the settings
  given now agree with them (model options may be left out or repeated). A
  model option newer than the stored run takes the value its absence implies
  (`stored_config_defaults`)."""
  path = os.path.join(config.train_dir, "train_config.json")
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    stored["model_config"] = {**cls.stored_config_defaults, **stored.get("model_config", {})}
    if (any(stored.get(k) != getattr(config, k) for k in FIXED)
        or any(stored["model_config"].get(k) != v for k, v in config.model_config.items())):
      raise CodecError(
          f"{config.train_dir} holds a run with a different model ({stored}); "
          "use a new --train_dir")
  else:
    stored = dict({k: getattr(config, k) for k in FIXED}, init_from=config.init_from,
                  model_config={**_constructor_defaults(cls), **config.model_config})
    os.makedirs(config.train_dir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(stored, f, indent=2, sort_keys=True)
  return dataclasses.replace(config, model_config=stored["model_config"],
                             init_from=stored.get("init_from"))


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


def train(config: TrainConfig, printer: Callable[[str], None] = print) -> str:
  """Trains (or resumes) the run `config` sets and returns the path of the
  exported model."""
  cls = registry.codec_class(config.model_type)
  _check(config, cls)
  if config.seed is not None:
    tf.random.set_seed(config.seed)
  dataset = data.training_dataset(
      config.patch_size, config.batch_size, train_glob=config.train_glob,
      tfds_dataset=config.tfds_dataset, tfds_data_dir=config.tfds_data_dir,
      tfds_split=config.tfds_split, tfds_image_key=config.tfds_image_key,
      min_scale=config.min_scale, seed=config.seed)

  init_codec = None
  if config.init_from and tf.train.latest_checkpoint(
      os.path.join(config.train_dir, "checkpoints")):
    printer(f"{config.train_dir} holds a checkpoint: resuming it "
            "(--init_from applies to new runs only)")
  elif config.init_from:
    from tfc_codecs import api  # pylint: disable=import-outside-toplevel
    init_codec = api.load(config.init_from).net
    inherited = _inherited_config(init_codec, cls)
    if "lambdas" in config.model_config:
      inherited.pop("default_quality", None)  # Chosen anew for the new λ values.
    config = dataclasses.replace(config, model_config={**inherited, **config.model_config})
  config = _fixed_config(config, cls)
  config = dataclasses.replace(config, training_options={
      **{name: getattr(cls, name) for name in cls.declared_options("training_options")},
      **config.training_options})
  try:
    with precision.conv_dtype(config.conv_dtype):
      model = cls(**config.model_config)
  except (TypeError, ValueError) as e:
    raise CodecError(f"bad {config.model_type} model options: {e}") from None
  if init_codec is not None:
    _copy_weights(init_codec, model, config.init_from)
  for name, value in config.training_options.items():
    setattr(model, name, value)
  lmbda, distortion, max_steps = config.lmbda, config.distortion, config.max_steps

  optimizer = tf.keras.optimizers.Adam(
      learning_rate=config.learning_rate, global_clipnorm=config.clip_norm or None)
  optimizer.build(model.trainable_variables)  # Slots must exist before restore.
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  wall_seconds = tf.Variable(0., dtype=tf.float64, trainable=False)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step,
                                   wall_seconds=wall_seconds)
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(config.train_dir, "checkpoints"), max_to_keep=2)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    printer(f"resumed from {manager.latest_checkpoint} at step {int(step)}")
    _trim_progress(config.train_dir, int(step))

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
  writer = tf.summary.create_file_writer(os.path.join(config.train_dir, "logs"))
  history = []
  try:
    if int(step) < max_steps:
      last_save = last_log = time.monotonic()
      steps_at_log = int(step)
      session_start = time.monotonic()
      wall_at_start = float(wall_seconds)
      for batch in dataset:
        if int(step) >= max_steps or stop["signal"] is not None:
          break
        optimizer.learning_rate.assign(_lr_at(int(step), max_steps, config.learning_rate,
                                              config.decay_start, config.warmup_steps))
        metrics = {k: float(v) for k, v in train_step(batch).items()}
        step.assign_add(1)
        wall_seconds.assign(wall_at_start + time.monotonic() - session_start)
        history = (history + [metrics])[-config.log_every:]
        now = time.monotonic()
        if int(step) % config.log_every == 0 or int(step) == max_steps:
          mean = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
          rate = (int(step) - steps_at_log) / max(now - last_log, 1e-9)
          printer(f"step {int(step)}  loss {mean['loss']:.4f}  bpp {mean['bpp']:.4f}"
                  f"  psnr {mean['psnr']:.2f}  |g| {mean['grad_norm']:.2f}"
                  f"  lr {float(optimizer.learning_rate):.2e}  {rate:.2f} steps/s"
                  + ("" if mean["finite"] == 1 else "  (skipped non-finite steps)"))
          with open(os.path.join(config.train_dir, "progress.jsonl"), "a") as f:
            f.write(json.dumps(dict(step=int(step), **mean)) + "\n")
          with writer.as_default(step=int(step)):
            for key, value in mean.items():
              tf.summary.scalar(key, value)
          writer.flush()
          last_log, steps_at_log = now, int(step)
        if now - last_save > 60 * config.checkpoint_minutes:
          manager.save(checkpoint_number=int(step))
          last_save = now
      manager.save(checkpoint_number=int(step))
  finally:
    for s, handler in previous_handlers.items():
      signal.signal(s, handler)
  if int(step) < max_steps:
    printer(f"stopped at step {int(step)}; run the same command to resume")
    raise SystemExit(130)

  model_dir.round_weights(model)
  model.freeze()
  provenance = dict(
      config.to_dict(), command=" ".join(["tfc_codecs"] + sys.argv[1:]), steps=int(step),
      wall_seconds=round(float(wall_seconds), 1),
      final_train_metrics=_last_progress(config.train_dir))
  out = os.path.join(config.train_dir, "model")
  fingerprint = model_dir.save(model, out, provenance, overwrite=True)
  printer(f"wrote model {out} (fingerprint {fingerprint}) after {int(step)} steps")
  return out
