import common as C, detectors as D, numpy as np, time
from sklearn.metrics import roc_auc_score
cfgs={"cnn_e0.5":dict(learner="cnn",expand=0.5),"cnn_e0.05":dict(learner="cnn",expand=0.05),
      "lin_conv":dict(learner="linear_conv"),"lin_penult":dict(learner="linear_penult"),"lin_pix":dict(learner="linear_pixels"),
      "cnn_penultcore":dict(learner="cnn",layer="penult")}
import sys
names=sys.argv[1:] or list(cfgs)
for name in names:
    kw=cfgs[name]
    for rate in (0.10,0.03,0.0):
        for s in range(3):
            d=C.get_run(s,rate); m=d['mask']; t=time.perf_counter()
            sc,info=D.core_reclassification(d,return_info=True,**kw); t=time.perf_counter()-t
            au=roc_auc_score(m,sc) if m.any() else float('nan')
            row=[]
            for th in (2,3,4):
                f=sc>th; p,r=C.prf(f,m); row.append(f"@{th}: P{p:.2f} R{r:.2f} cleanFP{int((f&~m).sum())}")
            print(f"{name} r{rate} s{s} AUROC {au:.4f} poison-in-core {(info['core']&m).sum()} sizes {info['sizes']} t{t:.1f} | "+" ".join(row),flush=True)
