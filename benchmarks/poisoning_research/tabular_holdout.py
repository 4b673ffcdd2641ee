"""Fresh seeds 20-29, nothing re-tuned: (A) label flips with the chosen recipe (OOF average of
LR(C=0.1)+kNN15 probabilities, 10 folds, margin score, threshold at 1% of clean calibration
runs 100-119); (B) backdoor: pair-tie(a=1%) AND robust Mahalanobis(a=5%)."""
import numpy as np, time
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.metrics import roc_auc_score
import tabular as T, tabular_backdoor_data as B, tabular_backdoor as TB
from tabular_ties import pair_tie_score
def probs(X, y, s):
    return np.mean([T.oof_proba(make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)), X, y, s, 10),
                    T.oof_proba(make_pipeline(StandardScaler(), KNeighborsClassifier(15)), X, y, s, 10)], 0)
for dname, loader in (("breast_cancer", load_breast_cancer), ("wine", load_wine)):
    t0 = time.perf_counter()
    X, y = loader(return_X_y=True); K = len(np.unique(y))
    thr = T.calibrate([T.confident_learning(probs(X, y, s), y)[2] for s in range(100, 120)], 0.01)
    P, R, A, CF = [], [], [], []
    for s in range(20, 30):
        yn, m = T.flips(y, 0.10, s, K); sc = T.confident_learning(probs(X, yn, s), yn)[2]
        p, r = T.prf(sc > thr, m); P.append(p); R.append(r); A.append(roc_auc_score(m, sc))
        CF.append((T.confident_learning(probs(X, y, s), y)[2] > thr).mean())
    print(f"[A fresh 20-29] {dname}: P {min(P):.2f}-{max(P):.2f} R {min(R):.2f}-{max(R):.2f} AUC {min(A):.3f}-{max(A):.3f} clean {min(CF)*100:.2f}-{max(CF)*100:.2f}% | {time.perf_counter()-t0:.1f}s for 20 cal + 10x2 runs", flush=True)
t0 = time.perf_counter()
calT = [pair_tie_score(*B.make(s, 0.0)[:2]) for s in range(100, 120)]
calS = [TB.robust_dist(*B.make(s, 0.0)[:2]) for s in range(100, 120)]
tT = T.calibrate(calT, 0.01); tS = T.calibrate(calS, 0.05)
for rate in (0.10, 0.03):
    P, R, CF = [], [], []
    for s in range(20, 30):
        Xtr, ytr, _, _, m = B.make(s, rate); f = (pair_tie_score(Xtr, ytr) > tT) & (TB.robust_dist(Xtr, ytr) > tS)
        p, r = T.prf(f, m); P.append(p); R.append(r)
        Xc, yc, _, _, _ = B.make(s, 0.0); CF.append(((pair_tie_score(Xc, yc) > tT) & (TB.robust_dist(Xc, yc) > tS)).mean())
    print(f"[B fresh 20-29] tie AND robust_maha r{rate}: P {min(P):.2f}-{max(P):.2f} R {min(R):.2f}-{max(R):.2f} clean {min(CF)*100:.2f}-{max(CF)*100:.2f}%")
print(f"[B] {time.perf_counter()-t0:.1f}s")
