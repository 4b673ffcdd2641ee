"""Score every candidate on cached runs; calibrate thresholds on clean runs; report.
poisoned: seeds 0-9 at 10% and 3%; clean eval: seeds 0-9; clean calibration: seeds 100-119
(expensive retraining methods: poisoned 0-4, clean eval 0-4, calibration 100-109)."""
import common as C, detectors as D, numpy as np, time, json, pickle, sys
from sklearn.metrics import roc_auc_score

METHODS = {
    "spectral_penult": (lambda d: D.spectral_signature(d["penult"], d["y"]), False),
    "spectral_conv": (lambda d: D.spectral_signature(d["conv"], d["y"]), False),
    "rmaha_penult": (lambda d: D.robust_mahalanobis(d["penult"], d["y"]), False),
    "rmaha_conv": (lambda d: D.robust_mahalanobis(d["conv"], d["y"]), False),
    "spectre_que_penult": (lambda d: D.spectre_que(d["penult"], d["y"]), False),
    "spectre_que_conv": (lambda d: D.spectre_que(d["conv"], d["y"]), False),
    "ac_penult": (lambda d: D.activation_clustering(d["penult"], d["y"]), False),
    "ac_conv": (lambda d: D.activation_clustering(d["conv"], d["y"]), False),
    "loss_ep1_high": (lambda d: D.early_loss(d, 1), False),
    "loss_ep1_low": (lambda d: -D.early_loss(d, 1), False),
    "loss_ep2_high": (lambda d: D.early_loss(d, 2), False),
    "knn_pixels": (D.knn_disagreement, False),
    "core_linear_conv": (lambda d: D.core_reclassification(d, learner="linear_conv"), False),
    "core_linear_conv_keep0.3": (lambda d: D.core_reclassification(d, learner="linear_conv", keep=0.3), False),
    "core_linear_conv_parts2": (lambda d: D.core_reclassification(d, learner="linear_conv", parts=2), False),
    "core_linear_conv_lopo3": (lambda d: D.core_reclassification(d, learner="linear_conv", parts=3, lopo=True), False),
    "core_linear_penult": (lambda d: D.core_reclassification(d, learner="linear_penult"), False),
    "core_linear_pixels": (lambda d: D.core_reclassification(d, learner="linear_pixels"), False),
    "core_cnn_retrain": (lambda d: D.core_reclassification(d, learner="cnn"), True),
    "crossfit5_cnn": (lambda d: D.crossfit_disagreement(d), True),
}
CACHE = C.LAB / "scores.pkl"
store = pickle.load(open(CACHE, "rb")) if CACHE.exists() else {}

def sets(expensive):
    n = 5 if expensive else 10
    return ([(s, 0.10) for s in range(n)] + [(s, 0.03) for s in range(n)] + [(s, 0.0) for s in range(n)]
            + [(s, 0.0) for s in range(100, 100 + (10 if expensive else 20))])

names = sys.argv[1:] or list(METHODS)
for name in names:
    fn, exp = METHODS[name]
    for s, r in sets(exp):
        key = (name, s, r)
        if key in store: continue
        d = C.get_run(s, r); t = time.perf_counter(); sc = fn(d); store[key] = (np.asarray(sc, float), time.perf_counter() - t)
    pickle.dump(store, open(CACHE, "wb"))
    print("scored", name, flush=True)

def summarize(name, alphas=(0.01, 0.001)):
    fn, exp = METHODS[name]
    cal = np.concatenate([store[(name, s, 0.0)][0] for s, r in sets(exp) if s >= 100])
    n = 5 if exp else 10
    out = {"method": name, "seeds": n, "time_s": float(np.mean([store[(name, s, r)][1] for s, r in sets(exp)]))}
    for a in alphas:
        thr = float(np.quantile(cal, 1 - a))
        res = {"thr": thr}
        for rate in (0.10, 0.03):
            P, R, A, FPRp = [], [], [], []
            for s in range(n):
                d = C.get_run(s, rate); m = d["mask"].astype(bool); sc = store[(name, s, rate)][0]
                f = sc > thr; p, rr = C.prf(f, m); P.append(p); R.append(rr); FPRp.append(float((f & ~m).sum() / (~m).sum()))
                A.append(roc_auc_score(m, sc))
            res[rate] = dict(P=(min(P), float(np.median(P)), max(P)), R=(min(R), float(np.median(R)), max(R)),
                             AUROC=(min(A), float(np.median(A)), max(A)), fpr_in_poisoned=(min(FPRp), max(FPRp)),
                             meets=bool(min(P) >= (0.9 if rate == 0.1 else 0.8) and min(R) >= (0.9 if rate == 0.1 else 0.8)))
        cf = [float((store[(name, s, 0.0)][0] > thr).mean()) for s in range(n)]
        res["clean_flag_rate"] = (min(cf), max(cf))
        out[a] = res
    return out

if __name__ == "__main__":
    allres = [summarize(nm) for nm in METHODS if all((nm, s, r) in store for s, r in sets(METHODS[nm][1]))]
    json.dump(allres, open(C.LAB / "digits_results.json", "w"), indent=1, default=str)
    for o in allres:
        for a in (0.01, 0.001):
            res = o[a]
            l = f"{o['method']:22s} a={a:<5} "
            for rate in (0.10, 0.03):
                x = res[rate]
                l += f"| {int(rate*100)}%: P {x['P'][0]:.2f}-{x['P'][2]:.2f} R {x['R'][0]:.2f}-{x['R'][2]:.2f} AUC {x['AUROC'][0]:.3f}-{x['AUROC'][2]:.3f} {'MEETS' if x['meets'] else '     '} "
            l += f"| clean {res['clean_flag_rate'][0]*100:.2f}-{res['clean_flag_rate'][1]*100:.2f}% | {o['time_s']:.2f}s n={o['seeds']}"
            print(l)
