"""Class-level population gate: a backdoor is a population, not an outlier. Sample threshold
at clean FPR alpha (calibration runs 100-119), then a class keeps its flags only when it holds
>= g of them, g = 1 + the largest per-class flag count seen in any clean calibration run."""
import common as C, numpy as np, pickle, sys, json
from sklearn.metrics import roc_auc_score
store = pickle.load(open(sys.argv[1] if len(sys.argv) > 1 else C.LAB / "scores_backup.pkl", "rb"))
methods = sorted({k[0] for k in store})
out = []
for name in methods:
    cal_seeds = [s for (n, s, r) in store if n == name and s >= 100]
    ev = sorted({s for (n, s, r) in store if n == name and s < 100 and r == 0.10})
    ycal = {s: C.get_run(s, 0.0)["y"] for s in cal_seeds}
    cal = np.concatenate([store[(name, s, 0.0)][0] for s in cal_seeds])
    for a in (0.01, 0.005, 0.002, 0.001):
        thr = float(np.quantile(cal, 1 - a))
        g = 1 + max(np.bincount(ycal[s][store[(name, s, 0.0)][0] > thr], minlength=10).max() for s in cal_seeds)
        line = f"{name:26s} a={a:<6} g={g:<3d}"
        rec = dict(method=name, alpha=a, thr=thr, gate=int(g))
        ok = True
        for rate in (0.10, 0.03):
            P, R = [], []
            for s in ev:
                d = C.get_run(s, rate); m = d["mask"]; sc = store[(name, s, rate)][0]
                f = sc > thr; cnt = np.bincount(d["y"][f], minlength=10); f = f & (cnt[d["y"]] >= g)
                p, r = C.prf(f, m); P.append(p); R.append(r)
            fl = 0.9 if rate == 0.1 else 0.8
            ok &= min(P) >= fl and min(R) >= fl
            rec[str(rate)] = dict(P=(min(P), max(P)), R=(min(R), max(R)))
            line += f" | {int(rate*100)}%: P {min(P):.2f}-{max(P):.2f} R {min(R):.2f}-{max(R):.2f}"
        cf = []
        for s in ev:
            d = C.get_run(s, 0.0); sc = store[(name, s, 0.0)][0]; f = sc > thr
            cnt = np.bincount(d["y"][f], minlength=10); cf.append((f & (cnt[d["y"]] >= g)).mean())
        rec["clean_flag_rate"] = (min(cf), max(cf)); rec["meets"] = bool(ok)
        line += f" | clean {min(cf)*100:.2f}-{max(cf)*100:.2f}% {'MEETS' if ok else ''}"
        print(line); out.append(rec)
json.dump(out, open(C.LAB / "gate_results.json", "w"), indent=1)
