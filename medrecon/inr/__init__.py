"""Shared implicit-neural-representation engine (pure PyTorch; CPU and GPU).

Used by :mod:`medrecon.svr` (intensity field for slice-to-volume reconstruction) and by the
multi-view code (neural SDF). Nothing here knows about MRI or cameras: points in, features out.

Public API (stable; other modules code against these names)
-----------------------------------------------------------
``HashGrid(dim=3, n_levels=12, n_features=2, log2_hashmap_size=19, base_resolution=16,``
``         finest_resolution=512, init_scale=1e-4)``
    ``nn.Module``. Multi-resolution hash encoding (Instant-NGP style). ``forward(x)`` takes
    points ``x`` of shape ``(N, dim)`` in the unit cube ``[0, 1]^dim`` (points outside are
    clamped) and returns ``(N, n_levels * n_features)`` features (float32). Coarse levels whose
    ``(res+1)^dim`` cells fit in the table are indexed densely (no collisions); finer levels are
    hashed with the primes ``(1, 2654435761, 805459861)``. One flat parameter table
    (``.table``) holds every level. ``.out_dim``, ``.resolutions`` describe it.
``MLP(in_dim, out_dim, width=64, depth=1, activation="relu", out_activation=None)``
    ``nn.Module``: ``depth`` hidden layers of ``width``.
``NeuralField(bbox_min, bbox_max, out_dim=1, encoding=None | dict, width=64, depth=1)``
    ``nn.Module``: maps world points ``(N, 3)`` (any unit, e.g. LPS mm) inside the box to
    ``(N, out_dim)``: normalise to ``[0, 1]^3`` -> :class:`HashGrid` -> :class:`MLP`.
    ``.encoding``, ``.mlp``; ``.normalize(points)`` gives the unit-cube coordinates.
``RigidPoses(n, axis_angle=None, translation=None, center=(0, 0, 0))``
    ``nn.Module`` with per-item rigid pose parameters: ``axis_angle`` ``(n, 3)`` radians and
    ``translation`` ``(n, 3)`` (same unit as the points). The transform of item ``i`` is
    ``x -> R_i (x - center) + center + t_i``. ``matrices()`` -> ``(n, 4, 4)``;
    ``transform(points, index)`` applies item ``index[j]`` to ``points[j]`` (``points`` ``(N, 3)``,
    ``index`` ``(N,)`` long); ``rotations()`` -> ``(n, 3, 3)``; ``deviation()`` -> mean squared
    rotation angle (rad^2) and translation (unit^2) relative to the initial values (a
    regulariser); ``.initial_axis_angle`` / ``.initial_translation`` buffers.
``axis_angle_to_matrix(v)`` / ``matrix_to_axis_angle(R)``
    Rodrigues formula and its inverse, batched ``(..., 3) <-> (..., 3, 3)``, differentiable
    (safe at zero angle).
``fit(step, param_groups, n_iter, lr=5e-3, ..., progress=None, stage="fit") -> FitLog``
    Generic training loop: Adam (or AdamW with ``weight_decay``), betas ``(0.9, 0.99)``,
    ``eps=1e-15``, step decay ``x gamma`` at the ``milestones`` fractions of ``n_iter``.
    ``step(it)`` returns a scalar loss tensor (or a dict with key ``"loss"`` plus floats to
    log); ``fit`` calls backward and the optimiser step. ``progress(stage, done, total)`` is
    called about 100 times. ``FitLog`` has ``losses`` (list of floats), ``seconds``, ``extras``.
``maybe_compile(fn_or_module, device, enable=None)``
    ``torch.compile`` on CUDA (when available and ``enable`` is not False); the eager object
    otherwise or if compilation fails.
``pick_device(device="auto") -> torch.device``
    ``"auto"`` -> CUDA if available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

Frames and units are the caller's: the engine is unit-agnostic; medrecon callers use LPS mm.
"""
from __future__ import annotations

from medrecon.inr.hashgrid import HashGrid
from medrecon.inr.field import MLP, NeuralField
from medrecon.inr.poses import RigidPoses, axis_angle_to_matrix, matrix_to_axis_angle
from medrecon.inr.train import FitLog, fit, maybe_compile, pick_device

__all__ = [
    "HashGrid", "MLP", "NeuralField", "RigidPoses", "axis_angle_to_matrix",
    "matrix_to_axis_angle", "fit", "FitLog", "maybe_compile", "pick_device",
]
