"""Tie signal AND a label-consistency/outlier signal (both thresholds from clean splits)."""
import numpy as np, time
from sklearn.metrics import roc_auc_score
import tabular_backdoor_data as B, tabular as T
from tabular_ties import pair_tie_score
import tabular_backdoor as TB  # noqa (only for robust_dist / core; guarded below)
def lr_mk(s):
    return TB.MODELS["lr"](s)
t0 = time.perf_counter()
sig = {"robust_maha": lambda X, y, s: TB.robust_dist(X, y),
       "cl_oof_lr": lambda X, y, s: TB.cl_score(X, y, lr_mk, s)}
calT = [pair_tie_score(*B.make(s, 0.0)[:2]) for s in range(100, 120)]
for name, fn in sig.items():
    calS = [fn(*B.make(s, 0.0)[:2], s) for s in range(100, 120)]
    for aT, aS in ((0.01, 0.05), (0.01, 0.10), (0.02, 0.10)):
        tT = T.calibrate(calT, aT); tS = T.calibrate(calS, aS)
        cj = np.mean([((a > tT) & (b > tS)).mean() for a, b in zip(calT, calS)])
        line = f"tie>{tT:.0f} (a={aT}) AND {name}>{tS:.2f} (a={aS}) [joint clean rate on calibration {cj*100:.2f}%]"
        for rate in (0.10, 0.03):
            P, R, CF = [], [], []
            for s in range(10):
                Xtr, ytr, _, _, m = B.make(s, rate)
                f = (pair_tie_score(Xtr, ytr) > tT) & (fn(Xtr, ytr, s) > tS); p, r = T.prf(f, m); P.append(p); R.append(r)
                Xc, yc, _, _, _ = B.make(s, 0.0); CF.append(((pair_tie_score(Xc, yc) > tT) & (fn(Xc, yc, s) > tS)).mean())
            line += f" | {int(rate*100)}%: P {min(P):.2f}-{max(P):.2f} R {min(R):.2f}-{max(R):.2f} clean {max(CF)*100:.2f}%"
        print(line, flush=True)
print("time %.1fs" % (time.perf_counter() - t0))
