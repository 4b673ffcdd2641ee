"""Candidate poisoned-sample detectors. Each returns a per-sample score (higher = more
suspicious) for the training set; thresholds are calibrated separately on clean runs."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.linalg import expm
from sklearn.cluster import KMeans
from sklearn.covariance import MinCovDet
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

import common as C
from guard.demo import DigitsSplit

warnings.filterwarnings("ignore")
N_CLASSES = 10


# ---------------------------------------------------------------- representation statistics
def _per_class(fn, R, y):
    s = np.zeros(len(y))
    for c in np.unique(y):
        i = np.flatnonzero(y == c)
        s[i] = fn(R[i])
    return s


def spectral_signature(R, y):
    """Tran et al. 2018: squared projection on the top singular vector of the centred class
    representations; divided by the class median so classes are comparable."""
    def f(X):
        Xc = X - X.mean(0)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        s = (Xc @ vt[0]) ** 2
        return s / (np.median(s) + 1e-12)
    return _per_class(f, R, y)


def _robust_whiten(X, k, seed=0):
    Z = PCA(min(k, X.shape[1], len(X) - 1), random_state=seed).fit_transform(X - np.median(X, 0))
    mcd = MinCovDet(random_state=seed).fit(Z)
    w, V = np.linalg.eigh(mcd.covariance_)
    W = V @ np.diag(np.clip(w, 1e-9, None) ** -0.5) @ V.T
    return (Z - mcd.location_) @ W


def robust_mahalanobis(R, y, k=8):
    """Per class: PCA to k dims, MinCovDet robust mean/cov, squared robust Mahalanobis."""
    return _per_class(lambda X: (_robust_whiten(X, k) ** 2).sum(1), R, y)


def spectre_que(R, y, k=8, alpha=4.0):
    """SPECTRE (Hayase et al. 2021), simplified: per class PCA-k, robust whitening (MCD in
    place of their filter-based robust estimator), QUE score
    tau_i = z_i^T Q z_i / tr Q,  Q = exp(alpha (S - I) / (||S|| - 1)),  S = cov(whitened)."""
    def f(X):
        Zw = _robust_whiten(X, k)
        S = np.cov(Zw.T)
        lam = np.linalg.eigvalsh(S)[-1]
        Q = expm(alpha * (S - np.eye(len(S))) / max(lam - 1, 1e-6))
        return np.einsum("ij,jk,ik->i", Zw, Q, Zw) / np.trace(Q)
    return _per_class(f, R, y)


def activation_clustering(R, y, dims=10):
    """Chen et al. 2018 on our representations: per class PCA-10, 2-means; the smaller
    cluster is suspicious. Score = (in smaller cluster) * (1 - relative size) * silhouette,
    so a class with a small, well-separated cluster scores highest."""
    s = np.zeros(len(y))
    for c in np.unique(y):
        i = np.flatnonzero(y == c)
        Z = PCA(dims, random_state=0).fit_transform(R[i] - R[i].mean(0))
        lab = KMeans(2, n_init=10, random_state=0).fit_predict(Z)
        sil = silhouette_score(Z, lab)
        cnt = np.bincount(lab, minlength=2)
        small = int(np.argmin(cnt))
        s[i] = (lab == small) * (1 - cnt[small] / len(i)) * sil
    return s


# ---------------------------------------------------------------- retraining-based scores
def _fit_predict_cnn(x, y, idx, seed):
    m = C.train_cnn(DigitsSplit(x[idx], y[idx], x[:1], y[:1]), seed=seed)
    with torch.no_grad():
        return torch.softmax(m(torch.as_tensor(x)), 1).numpy()


def _fit_predict_linear(F, y, idx, seed, C_reg=1.0):
    sc = StandardScaler().fit(F[idx])
    lr = LogisticRegression(C=C_reg, max_iter=300).fit(sc.transform(F[idx]), y[idx])
    p = np.zeros((len(y), N_CLASSES))
    p[:, lr.classes_] = lr.predict_proba(sc.transform(F))
    return p


def core_reclassification(run, *, layer="conv", keep=0.4, expand=0.5, iters=4, k=8,
                          learner="cnn", seed=0, return_info=False, parts=1, C_reg=1.0, lopo=False):
    """Robust-core reclassification (proposed).
    1. per class, robust Mahalanobis (PCA-k + MCD) of `layer` representations of the
       trained (possibly poisoned) model; the `keep` fraction nearest each class's robust
       centre is the initial core (keep < 0.5 so a class up to ~50% poisoned keeps a clean
       core: MCD locks onto the tighter clean mode).
    2. fit a fresh learner on the core only (no trigger examples -> no backdoor), predict
       every training sample; add to the core every sample whose label gets p >= `expand`;
       repeat until stable (<= iters fits).
    3. score = -log10 p_final(label | x) for samples outside the final core, 0 inside.
    parts > 1: the core is split at random into `parts` disjoint pieces, one learner per
    piece, and p = min over the pieces' learners (a poisoned sample that slipped into the core
    sits in one piece only, so the other learners stay backdoor-free). lopo=True: learner j
    is fitted on the core minus piece j instead (bigger, steadier learners).
    Poisoned samples look like their source class to a backdoor-free learner, so their label
    gets p ~ 1e-4..1e-6."""
    x, y = run["x"], run["y"]
    n = len(y)
    R = run[layer]
    core = np.zeros(n, bool)
    for c in range(N_CLASSES):
        i = np.flatnonzero(y == c)
        d = (_robust_whiten(R[i], k) ** 2).sum(1)
        core[i[np.argsort(d)[: int(round(keep * len(i)))]]] = True
    sizes = []
    rng = np.random.default_rng(seed)
    for t in range(iters):
        idx = np.flatnonzero(core)
        piece = rng.permutation(len(idx)) % parts
        pys = []
        for j in range(parts):
            sub = np.zeros(n, bool)
            sub[idx[(piece != j) if lopo else (piece == j)]] = True
            if learner == "cnn":
                p = _fit_predict_cnn(x, y, sub, seed + t + 100 * j)
            elif learner == "linear_conv":
                p = _fit_predict_linear(run["conv"], y, sub, seed, C_reg)
            elif learner == "linear_penult":
                p = _fit_predict_linear(run["penult"], y, sub, seed, C_reg)
            elif learner == "linear_pixels":
                p = _fit_predict_linear(x.reshape(n, -1), y, sub, seed, C_reg)
            else:
                raise ValueError(learner)
            pys.append(p[np.arange(n), y])
        py = np.min(pys, axis=0)
        sizes.append(int(core.sum()))
        new = core | (py >= expand)
        if (new == core).all():
            break
        core = new
    score = np.where(core, 0.0, -np.log10(np.clip(py, 1e-12, 1)))
    if return_info:
        return score, {"core": core, "sizes": sizes, "fits": len(sizes)}
    return score


def crossfit_disagreement(run, folds=5, seed=0):
    """Plain k-fold cross-fit: -log10 p_oof(label | x) from CNNs trained on the other folds
    (those folds contain poison too, so the backdoor is learned again)."""
    x, y = run["x"], run["y"]
    n = len(y)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % folds
    py = np.zeros(n)
    for f in range(folds):
        p = _fit_predict_cnn(x, y, fold != f, seed + f)
        py[fold == f] = p[fold == f, y[fold == f]]
    return -np.log10(np.clip(py, 1e-12, 1))


def early_loss(run, epoch=1):
    """Loss of each sample after `epoch` epochs of the same training run (ABL-style)."""
    return run["losses"][epoch - 1]


def knn_disagreement(run, k=10):
    from sklearn.neighbors import NearestNeighbors
    X = run["x"].reshape(len(run["y"]), -1)
    _, ind = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return (run["y"][ind[:, 1:]] != run["y"][:, None]).mean(1)
