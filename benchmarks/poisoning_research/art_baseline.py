"""ART 1.20.1 baselines on the same cached models/data."""
import common as C, numpy as np, torch, time, json, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
from torch import nn
from art.estimators.classification import PyTorchClassifier
from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

def clf_for(model, layer):
    if layer == "default":          # ART's own choice: layer_names[-1] of DigitsCNN = 'head' = logits
        net = model
    elif layer == "penult":        # re-wrap so ART's last layer is the 64-d penultimate ReLU
        net = nn.Sequential(model.features, nn.Flatten(), model.head[1], model.head[2])
    return PyTorchClassifier(model=net, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10, clip_values=(0, 1))

def run_art(seed, rate, layer, method, **kw):
    d = C.get_run(seed, rate); m = C.load_model(seed, rate); clf = clf_for(m, layer)
    np.random.seed(seed)
    t = time.perf_counter()
    if method == "AC":
        det = ActivationDefence(clf, d["x"], d["y"])
        _, is_clean = det.detect_poison(nb_clusters=2, nb_dims=10, reduce=kw.get("reduce", "FastICA"), cluster_analysis=kw["ca"])
    else:
        det = SpectralSignatureDefense(clf, d["x"], d["y"], batch_size=128, eps_multiplier=1.5, expected_pp_poison=kw["pp"])
        _, is_clean = det.detect_poison()
    t = time.perf_counter() - t
    flags = np.asarray(is_clean) == 0
    return flags, d["mask"], t

rows = []
configs = [("AC", "default", dict(ca="smaller")), ("AC", "default", dict(ca="distance")),
           ("AC", "penult", dict(ca="smaller")), ("AC", "penult", dict(ca="distance")),
           ("AC", "penult", dict(ca="smaller", reduce="PCA")), ("AC", "penult", dict(ca="distance", reduce="PCA")),
           ("AC", "default", dict(ca="relative-size")),
           ("SS", "default", dict(pp=0.33)), ("SS", "default", dict(pp=None)),
           ("SS", "penult", dict(pp=0.33)), ("SS", "penult", dict(pp=None))]
for method, layer, kw in configs:
    for rate in (0.10, 0.03, 0.0):
        for s in range(10):
            kk = dict(kw)
            if method == "SS" and kk["pp"] is None:
                kk["pp"] = rate if rate > 0 else 0.03   # "oracle" expected rate; 3% for clean runs
            try:
                f, msk, t = run_art(s, rate, layer, method, **kk)
                p, r = C.prf(f, msk)
                rows.append(dict(method=method, layer=layer, cfg=str(kw), rate=rate, seed=s, P=p, R=r, flag_rate=float(f.mean()), t=t))
            except Exception as e:
                rows.append(dict(method=method, layer=layer, cfg=str(kw), rate=rate, seed=s, error=repr(e)[:200]))
        sub = [x for x in rows if x["method"] == method and x["layer"] == layer and x["cfg"] == str(kw) and x["rate"] == rate]
        ok = [x for x in sub if "P" in x]
        if ok:
            P = [x["P"] for x in ok]; R = [x["R"] for x in ok]; FR = [x["flag_rate"] for x in ok]
            print(f"{method} {layer} {kw} rate {rate}: P {min(P):.2f}-{max(P):.2f} R {min(R):.2f}-{max(R):.2f} flag-rate {min(FR):.3f}-{max(FR):.3f} t {np.mean([x['t'] for x in ok]):.2f}s  (n={len(ok)}, errors={len(sub)-len(ok)})", flush=True)
        else:
            print(f"{method} {layer} {kw} rate {rate}: all errors: {sub[0]['error']}", flush=True)
json.dump(rows, open(C.LAB / "art_results.json", "w"), indent=1)
