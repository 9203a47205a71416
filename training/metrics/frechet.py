"""Streaming feature statistics and the Fréchet distance between two Gaussians.

:class:`FeatureStats` keeps a running mean and scatter matrix in float64, merged batch by
batch (Chan et al.'s parallel update), so the statistics of 50k images never need the
features themselves in memory: for 2048-d Inception features it holds two 2048² float64
matrices whatever the number of images.

:func:`frechet_distance` is

    d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

with the trace of the matrix square root taken from eigenvalues: ``S1^(1/2) S2 S1^(1/2)``
is symmetric positive semi-definite and has the same eigenvalues as ``S1 S2``, so
``tr((S1 S2)^(1/2)) = sum(sqrt(eig(S1^(1/2) S2 S1^(1/2))))``. Only symmetric
eigendecompositions are used: no complex parts to discard, and singular covariances (fewer
images than feature dimensions) are handled without the ``eps`` retry that ``sqrtm``-based
implementations need.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sisgen.errors import SisgenInputError


class FeatureStats:
    """Running mean and covariance of feature vectors (float64, constant memory).

    Args:
        dim: Feature dimension (fixed by the first update when ``None``).
    """

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.count = 0
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None  # sum of (x - mean)(x - mean)^T

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        """Add a batch of feature vectors ``[N, D]``."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        x = np.asarray(features, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be N×D, got shape {x.shape}")
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise ValueError(f"features have dimension {x.shape[1]}, expected {self.dim}")
        n = x.shape[0]
        if n == 0:
            return
        mean_b = x.mean(axis=0)
        centered = x - mean_b
        scatter_b = centered.T @ centered
        if self.count == 0:
            self._mean, self._scatter, self.count = mean_b, scatter_b, n
            return
        total = self.count + n
        delta = mean_b - self._mean
        self._scatter = self._scatter + scatter_b + np.outer(delta, delta) * (self.count * n
                                                                              / total)
        self._mean = self._mean + delta * (n / total)
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        """The mean feature vector ``[D]``."""
        if self.count == 0:
            raise ValueError("no features accumulated")
        return self._mean

    @property
    def cov(self) -> np.ndarray:
        """The unbiased covariance ``[D, D]`` (``N - 1`` denominator, as numpy's ``cov``)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        return self._scatter / (self.count - 1)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mu``/``sigma``/``count`` to an ``.npz`` (pytorch-fid's statistics format)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(f, mu=self.mean, sigma=self.cov, count=np.int64(self.count))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read statistics saved by :meth:`save` or by pytorch-fid (``mu``, ``sigma``).

        Raises:
            SisgenInputError: The file is missing or lacks ``mu``/``sigma``.
        """
        path = Path(path)
        if not path.is_file():
            raise SisgenInputError("no such FID statistics file", path)
        try:
            with np.load(path, allow_pickle=False) as data:
                mu = np.asarray(data["mu"], np.float64)
                sigma = np.asarray(data["sigma"], np.float64)
                count = int(data["count"]) if "count" in data else 2
        except (KeyError, ValueError, OSError) as e:
            raise SisgenInputError(f"not an FID statistics .npz with mu and sigma ({e})",
                                   path) from e
        if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
            raise SisgenInputError(f"mu {mu.shape} and sigma {sigma.shape} do not match", path)
        stats = cls(mu.size)
        stats.count = max(count, 2)
        stats._mean = mu
        stats._scatter = sigma * (stats.count - 1)
        return stats


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((matrix + matrix.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for symmetric PSD ``S1``, ``S2`` (see the module docstring)."""
    root1 = _sqrt_psd(np.asarray(sigma1, np.float64))
    m = root1 @ np.asarray(sigma2, np.float64) @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance² between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1: Mean ``[D]`` of the first Gaussian.
        sigma1: Covariance ``[D, D]`` of the first Gaussian.
        mu2: Mean ``[D]`` of the second Gaussian.
        sigma2: Covariance ``[D, D]`` of the second Gaussian.

    Returns:
        The squared distance (what "FID" reports), clipped at 0 against round-off.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2,
                                                                                    np.float64))
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(
        np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size,) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, "
                         f"sigma {sigma1.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1,
                                                                                       sigma2)
    return float(max(d2, 0.0))


def stats_distance(a: FeatureStats, b: FeatureStats) -> float:
    """:func:`frechet_distance` between two accumulated :class:`FeatureStats`."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)
