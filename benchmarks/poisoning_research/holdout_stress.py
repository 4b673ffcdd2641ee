"""Fresh-seed confirmation (seeds 20-29) and attack-variant stress tests (seeds 0-4) for the
candidates, with thresholds and gates frozen from the calibration runs (clean seeds 100-119)."""
import common as C, detectors as D, numpy as np, pickle, json, time
from sklearn.metrics import roc_auc_score
store = pickle.load(open(C.LAB / "scores.pkl", "rb"))
CANDS = {
    "core_linear_conv_lopo3": lambda d: D.core_reclassification(d, learner="linear_conv", parts=3, lopo=True),
    "core_linear_conv_parts2": lambda d: D.core_reclassification(d, learner="linear_conv", parts=2),
    "spectre_que_conv": lambda d: D.spectre_que(d["conv"], d["y"]),
    "rmaha_conv": lambda d: D.robust_mahalanobis(d["conv"], d["y"]),
}
def calib(name, a):
    cs = [s for s in range(100, 120)]
    cal = np.concatenate([store[(name, s, 0.0)][0] for s in cs]); thr = float(np.quantile(cal, 1 - a))
    g = 1 + max(np.bincount(C.get_run(s, 0.0)["y"][store[(name, s, 0.0)][0] > thr], minlength=10).max() for s in cs)
    return thr, int(g)
RULES = {"a0.001": (0.001, False), "a0.01+gate": (0.01, True)}
cfg = {n: {r: calib(n, a) for r, (a, gate) in RULES.items()} for n in CANDS}
print("frozen thresholds/gates:", cfg, flush=True)
def flags(name, rule, sc, y):
    thr, g = cfg[name][rule]; f = sc > thr
    if RULES[rule][1]:
        cnt = np.bincount(y[f], minlength=10); f = f & (cnt[y] >= g)
    return f
scenarios = [("holdout", s, r, 0, "br") for r in (0.10, 0.03, 0.0) for s in range(20, 30)]
for r, tg, tr in [(0.10, 1, "br"), (0.03, 1, "br"), (0.10, 0, "tl"), (0.03, 0, "tl"), (0.10, 0, "pat"), (0.03, 0, "pat"),
                  (0.01, 0, "br"), (0.05, 0, "br"), (0.20, 0, "br")]:
    scenarios += [("stress", s, r, tg, tr) for s in range(5)]
rows = []
for kind, s, r, tg, tr in scenarios:
    d = C.get_run(s, r, tg, tr); m = d["mask"].astype(bool)
    for name, fn in CANDS.items():
        t = time.perf_counter(); sc = fn(d); t = time.perf_counter() - t
        row = dict(kind=kind, seed=s, rate=r, target=tg, trigger=tr, method=name, t=t, asr=float(d["asr"]), acc=float(d["acc"]))
        if m.any(): row["auroc"] = float(roc_auc_score(m, sc))
        for rule in RULES:
            f = flags(name, rule, sc, d["y"]); p, rr = C.prf(f, m)
            row[rule] = dict(P=p, R=rr, flag_rate=float(f.mean()))
        rows.append(row)
json.dump(rows, open(C.LAB / "holdout_stress.json", "w"), indent=1)
def show(sel, label):
    for name in CANDS:
        for rule in RULES:
            xs = [x for x in rows if sel(x) and x["method"] == name]
            if not xs: continue
            P = [x[rule]["P"] for x in xs]; R = [x[rule]["R"] for x in xs]; FR = [x[rule]["flag_rate"] for x in xs]
            au = [x.get("auroc", np.nan) for x in xs]; asr = [x["asr"] for x in xs]
            print(f"{label:24s} {name:24s} {rule:11s} P {min(P):.2f}-{max(P):.2f} R {min(R):.2f}-{max(R):.2f} AUC {np.nanmin(au):.3f}-{np.nanmax(au):.3f} flag-rate {min(FR)*100:.2f}-{max(FR)*100:.2f}% ASR {min(asr):.2f}-{max(asr):.2f} t {np.mean([x['t'] for x in xs]):.2f}s")
for r in (0.10, 0.03, 0.0):
    show(lambda x, r=r: x["kind"] == "holdout" and x["rate"] == r, f"holdout s20-29 r{r}")
for r, tg, tr in [(0.10, 1, "br"), (0.03, 1, "br"), (0.10, 0, "tl"), (0.03, 0, "tl"), (0.10, 0, "pat"), (0.03, 0, "pat"), (0.01, 0, "br"), (0.05, 0, "br"), (0.20, 0, "br")]:
    show(lambda x, r=r, tg=tg, tr=tr: x["kind"] == "stress" and x["rate"] == r and x["target"] == tg and x["trigger"] == tr, f"stress r{r} t{tg} {tr}")
