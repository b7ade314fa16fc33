"""Fast inference: the same network, arithmetic rearranged (issue 9).

Everything here returns a *copy* of a trained :class:`~spinnet_lite.model.spinnet.SPINNet`
that computes the same function with less work, for any :class:`SPINNetConfig` (any levels,
widths, search range, input normalisation):

* :func:`fold_batchnorm`: in eval mode a BatchNorm is an affine map per channel, so it folds
  into the convolution before it (``w' = w * g / sqrt(v + eps)``, ``b' = b_bn - m * g / sqrt(v + eps)``);
* :func:`use_fast_cost_volume`: :class:`~spinnet_lite.model.cost_volume.FastCostVolume`, the
  same sums as the reference cost volume taken in cache-sized row bands;
* :func:`to_channels_last`: weights in ``channels_last`` memory format (NHWC), which oneDNN's
  convolutions run without reordering;
* :func:`bfloat16_bodies`: the estimator and refiner bodies (84 % of the arithmetic) in
  bfloat16, everything else (input normalisation, feature pyramid, cost volume, warps, the
  heads and every displacement sum) in float32 -- *not* the same function: on the held-out
  set its outputs differ from float32 by at most ~0.01 px and the median error is unchanged
  (``tests/test_fast.py`` bounds it; ``benchmarks/speed.py`` reports it); on a CPU with native
  bfloat16 arithmetic (AVX512-BF16, AMX) it is 1.5x (512 px) to 2x (2112 px) faster;
* :func:`fast_variant`: the seed's fast variant, output at level 3 then the refiners, built
  from a full model's weights (its accuracy is *not* that of the full model: see
  ``benchmarks/speed.py``);
* :func:`prepare`: one of the :data:`ENGINES` behind one callable, cached per model.

The plain model stays the reference: ``tests/test_fast.py`` checks every float32 path against it to
1e-4 px, for the seed's configuration and for issue 8's (first level 4, input normalisation).
"""
from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from .config import check_iterations
from .cost_volume import FastCostVolume
from .spinnet import SPINNet


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: BatchNorm without running statistics cannot be folded")
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                      padding_mode=conv.padding_mode)
    with torch.no_grad():
        w = conv.weight.double()
        scale = bn.running_var.double().add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        shift = (bias - bn.running_mean.double()) * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        fused.weight.copy_((w * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
        fused.bias.copy_(shift.to(conv.weight.dtype))
    return fused.to(conv.weight.device)


def _fold_in_place(module: nn.Module) -> int:
    """Fold every ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential``."""
    count = 0
    for child in module.children():
        count += _fold_in_place(child)
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = _fold_pair(conv, bn)
                module._modules[second] = nn.Identity()
                count += 1
    return count


def fold_batchnorm(model: SPINNet) -> SPINNet:
    """A copy of ``model`` in eval mode with every BatchNorm folded into its convolution.

    The copy computes what ``model.eval()`` computes (to float32 rounding, ~1e-6 px); it has no
    BatchNorm left, so it is for inference only (its ``state_dict`` is not a checkpoint's).

    Raises:
        ValueError: ``model`` is not a SPINNet, or a BatchNorm is not preceded by a convolution
            in the same ``nn.Sequential`` (it could not be folded).
    """
    if not isinstance(model, SPINNet):
        raise ValueError(f"fold_batchnorm: expected a SPINNet, got {type(model).__name__}")
    folded = copy.deepcopy(model).eval()
    _fold_in_place(folded)
    left = [name for name, m in folded.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"fold_batchnorm: BatchNorm layers not preceded by a Conv2d: {left[:3]}")
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def use_fast_cost_volume(model: SPINNet) -> SPINNet:
    """Swap ``model.cost_volume`` for :class:`FastCostVolume` (in place; same output). Returns ``model``."""
    model.cost_volume = FastCostVolume(model.config.search_range)
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D weights in ``channels_last`` (NHWC) memory format (in place)."""
    return model.to(memory_format=torch.channels_last)


class BFloat16Estimator(nn.Module):
    """An estimator (PhaseNet, TNet or a refiner) whose input and body run in bfloat16.

    Its float32 inputs (and bfloat16 features of a coarser level) are rounded to bfloat16 before
    they are concatenated (half the bytes to copy), the body's five convolutions run in bfloat16,
    and the head -- which gives the residual displacement or transmission -- runs in float32 on
    the body's features, so every residual and every sum over the levels is float32.  The
    features it returns (the next level's context, the refiners' input) stay bfloat16.
    Forward: as the wrapped estimator's.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        net.body.to(torch.bfloat16)

    def forward(self, *inputs: torch.Tensor):
        nhwc = self.net.head.weight.is_contiguous(memory_format=torch.channels_last)
        layout = torch.channels_last if nhwc else torch.preserve_format
        features = self.net.body(self.net.assemble(*(t.to(dtype=torch.bfloat16, memory_format=layout)
                                                     for t in inputs)))
        out = self.net.head(features.float())
        return (out, features) if self.net.returns_features else out


def bfloat16_bodies(model: SPINNet) -> SPINNet:
    """Run the input and body of every PhaseNet, TNet and refiner of ``model`` in bfloat16 (in place).

    The bodies (five convolutions each) are most of the network's arithmetic; see
    :class:`BFloat16Estimator` for what stays float32 (the heads, every displacement and
    transmission sum, the input normalisation, the feature pyramids, the cost volume and the
    warps).  The cost volume then leaves its output planar (the cast to bfloat16 reorders it in
    the same copy).  Use on a folded copy (:func:`fold_batchnorm`).  Returns ``model``.
    """
    for nets in (model.phase_nets, model.t_nets):
        for key in list(nets):
            if not isinstance(nets[key], BFloat16Estimator):
                nets[key] = BFloat16Estimator(nets[key])
    if model.phase_refiner is not None and not isinstance(model.phase_refiner, BFloat16Estimator):
        model.phase_refiner = BFloat16Estimator(model.phase_refiner)
        model.t_refiner = BFloat16Estimator(model.t_refiner)
    if isinstance(model.cost_volume, FastCostVolume):
        model.cost_volume.planar_out = True
    return model


@functools.lru_cache(maxsize=None)
def native_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 dot products (AVX512-BF16 or AMX-BF16; Linux flags).

    Elsewhere oneDNN emulates bfloat16, which is correct but no faster than float32, so
    ``engine="auto"`` keeps float32 there.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def fast_variant(model: SPINNet, refiners: bool = True) -> SPINNet:
    """The seed's fast variant of ``model``: estimation stops at level 3, then the refiners.

    A new :class:`SPINNet` with ``config.replace(last_level=3)`` and every weight of ``model``
    except the level-2 heads (a model whose config already stops at level 3 is returned as is).
    The refiners of a network trained down to level 2 were trained there; run at level 3 they
    see coarser inputs, so the accuracy is that of another network: ``benchmarks/speed.py``
    reports it (a network trained with ``get_config(..., last_level=3)`` has refiners made for it).

    Args:
        model: a :class:`SPINNet`.
        refiners: keep the refiners (False: the level-3 output as it is, without them).

    Raises:
        ValueError: ``model`` has no level 3 (``first_level < 3``).
    """
    if not isinstance(model, SPINNet):
        raise ValueError(f"fast_variant: expected a SPINNet, got {type(model).__name__}")
    config = model.config
    keep_refiners = config.refiners and bool(refiners)
    if config.last_level >= 3 and keep_refiners == config.refiners:
        return model
    if config.first_level < 3:
        raise ValueError(f"fast_variant: configuration {config.name!r} starts at level {config.first_level}, "
                         f"below 3; there is no level-3 output")
    fast = SPINNet(config.replace(last_level=max(3, config.last_level), refiners=keep_refiners,
                                  finest_iterations=1))  # level 3 was trained to run once
    wanted = fast.state_dict()
    state = {k: v for k, v in model.state_dict().items() if k in wanted}
    fast.load_state_dict(state, strict=True)
    return fast.to(next(model.parameters()).device).train(model.training)


# ---- engines ---------------------------------------------------------------------------------
#: Inference engines of :func:`prepare`. ``"plain"`` is the model as trained (the reference);
#: ``"folded"`` only its BatchNorms folded; ``"torch"`` folded and with the banded cost volume;
#: ``"bf16"`` that with the estimator bodies in bfloat16 (:func:`bfloat16_bodies`; not exact);
#: ``"torchscript"`` the "torch" model traced and frozen per input shape; ``"onnxruntime"`` the
#: folded model exported to ONNX per input shape and run by onnxruntime (optional dependency);
#: ``"auto"`` the fastest available on this machine (:data:`AUTO_ORDER`).
ENGINES = ("auto", "plain", "folded", "torch", "bf16", "torchscript", "onnxruntime")


#: Compiled TorchScript modules / ONNX Runtime sessions kept per :class:`InferenceModel` (one
#: per input shape, least recently used dropped first).
MAX_COMPILED_SHAPES = 4


class _Outputs(nn.Module):
    """``(reference, sample) -> (B, 3, H, W)``: dx, dy, T stacked (a tensor, for tracing), with
    ``iterations`` passes at the finest level (None: the model's configuration)."""

    def __init__(self, model: SPINNet, iterations: int | None = None):
        super().__init__()
        self.model = model
        self.iterations = iterations

    def forward(self, reference: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        if self.iterations is None:  # the network's own count (a stand-in model need not take the keyword)
            result = self.model(reference, sample)
        else:
            result = self.model(reference, sample, iterations=self.iterations)
        return torch.cat([result["displacement"], result["transmission"]], dim=1)


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` and ``onnx`` import (``pip install 'spinnet_lite[export]'``)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class InferenceModel:
    """A SPINNet prepared for inference by one engine: ``runner(reference, sample)``.

    Call it with ``(B, 1, H, W)`` float32 tensors (``H``, ``W`` multiples of
    :attr:`size_multiple`, on :attr:`device`); it returns ``(B, 3, H, W)``: dx, dy (px) and T.
    TorchScript and ONNX Runtime compile once per input shape and keep the result.

    Attributes:
        engine: the engine used (never ``"auto"``).
        fast: whether this is the fast variant (:func:`fast_variant`).
        config: the configuration of the network that runs.
        channels_last: whether weights and inputs are NHWC.
        iterations: passes at the finest level (``config.finest_iterations`` unless given).
    """

    def __init__(self, model: SPINNet, engine: str = "torch", fast: bool = False, channels_last: bool = False,
                 threads: int | None = None, iterations: int | None = None):
        if engine not in ENGINES[1:]:
            raise ValueError(f"unknown inference engine {engine!r}; expected one of {', '.join(map(repr, ENGINES))}")
        if engine == "onnxruntime" and not onnxruntime_available():
            raise ValueError("engine 'onnxruntime' needs onnx and onnxruntime: pip install 'spinnet_lite[export]'")
        self.engine, self.fast = engine, bool(fast)
        net = fast_variant(model).eval() if fast and model.config.last_level < 3 else model
        iterations = check_iterations(iterations)
        if net is not model:  # the fast variant: its level 3 was trained to run once
            iterations = None
        self.iterations = net.config.finest_iterations if iterations is None else iterations  # what runs
        on_cpu = next(net.parameters()).device.type == "cpu"
        if engine == "plain":
            pass  # the model itself, in the mode the caller chose (predict() sets eval), or a new copy
        elif engine in ("folded", "onnxruntime") or not on_cpu:
            # ONNX: one node per shift rather than per band; GPU: no CPU cache to fit, and every
            # band would be a kernel launch
            net = fold_batchnorm(net)
        else:
            net = use_fast_cost_volume(fold_batchnorm(net))
        if engine == "bf16":
            net = bfloat16_bodies(net)  # a folded copy, made just above
        self.channels_last = bool(channels_last) and engine in ("folded", "torch", "bf16", "torchscript")
        if self.channels_last:
            to_channels_last(net)
        self.config = net.config
        self.size_multiple = net.size_multiple
        self.device = next(net.parameters()).device
        self.module = _Outputs(net, iterations)  # no .eval() here: "plain" leaves the caller's model as it is
        self.threads = threads
        self._compiled: dict = {}

    def _compile(self, shape):
        import warnings

        example = torch.zeros(shape, device=self.device) + 1.0
        if self.channels_last:
            example = example.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: the shape is fixed on purpose
            if self.engine == "torchscript":
                traced = torch.jit.trace(self.module, (example, example), check_trace=False)
                return torch.jit.freeze(traced.eval())
            return _onnx_session(self.module, example, self.threads)

    def __call__(self, reference: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            reference = reference.contiguous(memory_format=torch.channels_last)
            sample = sample.contiguous(memory_format=torch.channels_last)
        if self.engine in ("plain", "folded", "torch", "bf16"):
            with torch.inference_mode():
                return self.module(reference, sample)
        key = tuple(reference.shape)
        runner = self._compiled.pop(key, None)
        if runner is None:
            runner = self._compile(key)
        self._compiled[key] = runner  # most recently used last
        while len(self._compiled) > MAX_COMPILED_SHAPES:
            self._compiled.pop(next(iter(self._compiled)))
        if self.engine == "torchscript":
            with torch.inference_mode():
                return runner(reference, sample)
        out = runner.run(None, {"reference": reference.detach().cpu().numpy(),
                                "sample": sample.detach().cpu().numpy()})[0]
        return torch.from_numpy(out).to(reference.device)

    def __repr__(self) -> str:
        return (f"InferenceModel(config={self.config.name!r}, engine={self.engine!r}, fast={self.fast}, "
                f"channels_last={self.channels_last}, iterations={self.iterations})")


def _onnx_session(module: nn.Module, example: torch.Tensor, threads: int | None):
    """Export ``module`` at ``example``'s shape to ONNX (in memory) and open an onnxruntime session."""
    import io

    import onnxruntime as ort

    buffer = io.BytesIO()
    kwargs = dict(input_names=["reference", "sample"], output_names=["dx_dy_t"], opset_version=17)
    try:
        torch.onnx.export(module, (example, example), buffer, dynamo=False, **kwargs)
    except TypeError:  # an older torch without the dynamo argument
        torch.onnx.export(module, (example, example), buffer, **kwargs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


# ---- choosing and caching ----------------------------------------------------------------------
#: What ``engine="auto"`` runs on a CPU: the first available.  ``"bf16"`` is available where the
#: CPU has native bfloat16 arithmetic (:func:`native_bfloat16`): measured on the project's
#: 2-core CPU (AMD EPYC, AVX512-BF16; ``benchmarks/speed.py``) it is 1.5x (512 px) to 2x
#: (2112 px) faster than ``"torch"``, with the held-out median error unchanged and outputs
#: within ~0.01 px of float32.  Elsewhere ``"torch"`` (float32, equal to the plain model to
#: 1e-6 px).  ONNX Runtime exports and optimises a graph for every new image shape (seconds
#: to tens of seconds) and is an optional dependency: pass ``engine="onnxruntime"`` to use it.
#: On a GPU ``"auto"`` is ``"torch"``.
AUTO_ORDER = ("bf16", "torch")

#: Whether the torch engines use ``channels_last`` (NHWC): measured 1.4x faster than NCHW for the
#: lite network at 1536 px on one thread (3.4 s vs 4.7 s CPU), and no slower at 512 px.
CHANNELS_LAST = True

_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = None  # created on first use


def _fingerprint(model: nn.Module) -> tuple:
    """Identity of the weights: storage and in-place version of every parameter and buffer.

    Optimiser steps and ``load_state_dict`` bump a tensor's version, so a prepared copy is
    rebuilt after training or loading; writes through ``.data`` are invisible here (call
    :func:`clear_cache` after them).
    """
    def version(t):
        try:
            return t._version
        except RuntimeError:  # an inference tensor has no version counter
            return -1

    return tuple((t.data_ptr(), version(t), t.device.type) for t in
                 list(model.parameters()) + list(model.buffers()))


def clear_cache() -> None:
    """Forget every prepared model (they are rebuilt on next use)."""
    if _CACHE is not None:
        _CACHE.clear()


def resolve_engine(engine: str = "auto", device=None) -> str:
    """The engine ``engine`` stands for on ``device``: ``"auto"`` becomes the first available of
    :data:`AUTO_ORDER` (``"bf16"`` only on a CPU with native bfloat16; ``"torch"`` on a GPU).

    Raises:
        ValueError: an unknown engine, or ``"onnxruntime"`` without onnxruntime installed or on a GPU.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown inference engine {engine!r}; expected one of {', '.join(map(repr, ENGINES))}")
    on_cpu = device is None or torch.device(device).type == "cpu"
    if engine == "auto":
        for candidate in AUTO_ORDER if on_cpu else ("torch",):
            if candidate == "onnxruntime" and not onnxruntime_available():
                continue
            if candidate == "bf16" and not native_bfloat16():
                continue
            return candidate
        return "torch"
    if engine == "onnxruntime":
        if not on_cpu:
            raise ValueError("engine 'onnxruntime' runs on the CPU only; use engine='torch' on a GPU")
        if not onnxruntime_available():
            raise ValueError("engine 'onnxruntime' needs onnx and onnxruntime: pip install 'spinnet_lite[export]' "
                             "(or use engine='torch')")
    return engine


def prepare(model: SPINNet, engine: str = "auto", fast: bool = False,
            channels_last: bool | None = None, iterations: int | None = None) -> InferenceModel:
    """``model`` prepared for inference (cached: the second call with the same weights is free).

    Args:
        model: a trained :class:`SPINNet` (left unchanged).
        engine: ``"auto"`` (the fastest measured, :data:`AUTO_ORDER`), ``"plain"`` (the model as
            it is: the reference), ``"torch"`` (BatchNorm folded, banded cost volume),
            ``"bf16"`` (that, with the estimators' bodies in bfloat16: within ~0.01 px),
            ``"torchscript"`` (that, traced and frozen per input shape) or ``"onnxruntime"``
            (that, exported to ONNX per input shape; needs ``onnxruntime``).
        fast: the fast variant (:func:`fast_variant`): output at level 3, then the refiners.
        channels_last: NHWC weights and inputs (default :data:`CHANNELS_LAST`, as measured).
        iterations: passes at the finest level, 1-4 (default the network's
            ``config.finest_iterations``; the fast variant runs level 3 once).

    Returns:
        An :class:`InferenceModel`: ``runner(reference, sample) -> (B, 3, H, W)``.
    """
    global _CACHE
    import weakref

    if not isinstance(model, SPINNet):
        raise ValueError(f"prepare: expected a SPINNet, got {type(model).__name__}")
    device = next(model.parameters()).device
    engine = resolve_engine(engine, device)
    channels_last = CHANNELS_LAST if channels_last is None else bool(channels_last)
    iterations = check_iterations(iterations)
    if engine == "plain" and not fast:  # the model itself: nothing to cache
        return InferenceModel(model, "plain", channels_last=False, iterations=iterations)
    if _CACHE is None:
        _CACHE = weakref.WeakKeyDictionary()
    entries = _CACHE.setdefault(model, {})
    key = (engine, bool(fast), channels_last, str(device), torch.get_num_threads(), iterations)
    fingerprint = _fingerprint(model)
    hit = entries.get(key)
    if hit is None or hit[0] != fingerprint:
        hit = entries[key] = (fingerprint, InferenceModel(model, engine, fast=fast, channels_last=channels_last,
                                                          iterations=iterations))
    return hit[1]
