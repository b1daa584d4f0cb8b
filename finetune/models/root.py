"""Root recovery: the camera-space translation of a root-relative hand from its 2D keypoints and K.

CMR's registration (Chen et al. 2021; MobRecon's supplement uses it for its root stability
figure): find t minimising the reprojection error of the predicted root-relative keypoints X_i
placed at X_i + t against the predicted 2D keypoints u_i,

    min_t  sum_i w_i || pi(K (X_i + t)) - u_i ||^2,     pi(p) = (p_x / p_z, p_y / p_z).

CMR ran scipy's BFGS per sample from t = (0, 0, 0.6). Here, batched in torch: the linear
(algebraic) solution first, from (K_r - u K_3) (X_i + t) = 0 for the rows r = 1, 2 of K (exact
when the keypoints fit; it holds for any K, also the skewed ones augmentation makes), then
Gauss-Newton steps on the true reprojection error. Depths stay positive (z >= min_depth).

Outliers, as MobRecon's release rejects them (mobrecon/tools/registration.py, `registration`: SLSQP on
the same mean squared reprojection error, which the solve above minimises too): while the mean
per-keypoint error |sum over x, y of (projection - u)| is above 2 px, keypoints whose error is not below
mean + std are dropped and t is solved again, at most 5 solves, and never with fewer than 13 keypoints
(the round that would leave fewer keeps its t). `outlier_rounds=1` solves once with every keypoint.
"""
from __future__ import annotations

import torch

PRIOR_DEPTH = 0.6   # metres: where CMR started its search, used where the keypoints leave the depth open


def _residuals(t, X, uv, K):
    p = torch.einsum("bij,bnj->bni", K, X + t.unsqueeze(1))
    return p[..., :2] / p[..., 2:3] - uv, p


# release registration.py: at most 5 solves while the mean error exceeds 2 px, at least 13 keypoints kept
OUTLIER_ROUNDS, OUTLIER_PX, MIN_KEPT = 5, 2.0, 13


def recover_root(keypoints_rel: torch.Tensor, keypoints_2d: torch.Tensor, K: torch.Tensor, weights=None,
                 iterations: int = 5, min_depth: float = 0.05, outlier_rounds: int = OUTLIER_ROUNDS) -> torch.Tensor:
    """(B, 3) translation t with keypoints_rel + t in the camera frame (metres).

    keypoints_rel (B, N, 3) root-relative, keypoints_2d (B, N, 2) pixels, K (B, 3, 3); weights (B, N)
    optional per-keypoint confidences; outlier_rounds: the release's outlier rejection (module doc).
    """
    X = keypoints_rel.double()
    uv = keypoints_2d.double()
    K = K.double()
    B, N, _ = X.shape
    w = torch.ones(B, N, dtype=X.dtype, device=X.device) if weights is None else weights.double()
    t = _solve(X, uv, K, w, iterations, min_depth)
    active = torch.ones(B, dtype=torch.bool, device=X.device)
    for _ in range(int(outlier_rounds) - 1):
        r, _ = _residuals(t, X, uv, K)
        err = r.sum(-1).abs()                                                        # (B, N), the release's
        kept = w > 0
        n = kept.sum(1).clamp(min=1)
        mean = (err * kept).sum(1) / n
        std = (((err - mean[:, None]) ** 2 * kept).sum(1) / n).sqrt()              # numpy's std (ddof 0)
        select = kept & (err < (mean + std)[:, None])
        active = active & (mean > OUTLIER_PX) & (select.sum(1) >= MIN_KEPT)
        if not bool(active.any()):
            break
        w = torch.where(active[:, None], w * select, w)
        t = torch.where(active[:, None], _solve(X, uv, K, w, iterations, min_depth), t)
    return t.to(keypoints_rel.dtype)


def _solve(X, uv, K, w, iterations: int, min_depth: float) -> torch.Tensor:
    """The weighted reprojection fit: the linear solution, then Gauss-Newton steps."""
    B, N, _ = X.shape
    # linear: rows (K_r - u_r K_3), r = 0, 1, each (B, N, 3); A t = -A X
    A = torch.stack([K[:, None, 0] - uv[..., 0:1] * K[:, None, 2],
                     K[:, None, 1] - uv[..., 1:2] * K[:, None, 2]], dim=2)           # (B, N, 2, 3)
    b = -(A * X.unsqueeze(2)).sum(-1)                                                 # (B, N, 2)
    sw = w.sqrt()[..., None, None]
    A2, b2 = (A * sw).reshape(B, 2 * N, 3), (b * sw[..., 0]).reshape(B, 2 * N, 1)
    prior = torch.tensor([0.0, 0.0, PRIOR_DEPTH], dtype=X.dtype, device=X.device).expand(B, 3)
    t = _keep_in_front(_damped_solve(A2.transpose(1, 2) @ A2, A2.transpose(1, 2) @ b2, prior), X, min_depth)
    for _ in range(int(iterations)):
        r, p = _residuals(t, X, uv, K)                                                # (B, N, 2)
        z = p[..., 2:3]
        # d(p_xy / p_z)/dt = (K_xy - (p_xy / p_z) K_z) / p_z
        J = (K[:, None, :2, :] - (p[..., :2] / z).unsqueeze(-1) * K[:, None, 2:3, :]) / z.unsqueeze(-1)
        Jw, rw = (J * sw).reshape(B, 2 * N, 3), (r * sw[..., 0]).reshape(B, 2 * N, 1)
        H = Jw.transpose(1, 2) @ Jw
        step = _damped_solve(H, -(Jw.transpose(1, 2) @ rw), torch.zeros_like(t))
        t = _keep_in_front(t + step, X, min_depth)
    return t


def _damped_solve(H, g, prior):
    """argmin_t |A t - b|^2 + lam |t - prior|^2 with H = A^T A, g = A^T b and a tiny lam relative to H: the
    exact solution when the keypoints determine t, and `prior` along the directions they do not (a
    collapsed prediction, e.g. every keypoint at one point, leaves the depth undetermined)."""
    eye = torch.eye(3, dtype=H.dtype, device=H.device)
    lam = 1e-9 * H.diagonal(dim1=1, dim2=2).sum(-1).clamp(min=1e-30)[:, None, None] + 1e-30
    return torch.linalg.solve(H + lam * eye, g + lam * prior.unsqueeze(-1)).squeeze(-1)


def _keep_in_front(t, X, min_depth):
    nearest = (X[..., 2] + t[:, None, 2]).amin(dim=1)
    shift = (min_depth - nearest).clamp(min=0.0)
    return torch.cat([t[:, :2], (t[:, 2] + shift).unsqueeze(-1)], dim=-1)


def camera_space(pred: dict, K: torch.Tensor, weights=None) -> dict:
    """Camera-frame keypoints and vertices of a model output: with the model's own 'root' when it predicts
    one (camera-space models), else the root recovered from its 2D and root-relative keypoints."""
    t = pred["root"].detach() if "root" in pred else \
        recover_root(pred["keypoints_3d"].detach(), pred["keypoints_2d"].detach(), K, weights)
    return {"root": t, "keypoints_cam": pred["keypoints_3d"].detach() + t[:, None],
            "vertices_cam": pred["vertices"].detach() + t[:, None]}
