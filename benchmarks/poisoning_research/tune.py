import common as C, detectors as D, numpy as np, time, sys
from sklearn.metrics import roc_auc_score
V={"base":{}, "keep0.3":dict(keep=0.3), "C0.1":dict(C_reg=0.1), "parts2":dict(parts=2), "parts3":dict(parts=3), "parts2_keep0.3":dict(parts=2,keep=0.3)}
for name in sys.argv[1:]:
    kw=V[name]; aucs=[]; pic=[]; t0=time.perf_counter()
    for rate,seeds in ((0.10,range(10)),(0.03,range(10))):
        for s in seeds:
            d=C.get_run(s,rate); sc,info=D.core_reclassification(d,learner="linear_conv",return_info=True,**kw)
            aucs.append(roc_auc_score(d['mask'],sc)); pic.append(int((info['core']&d['mask']).sum()))
    cl=[]
    for s in list(range(100,110)):
        cl.append(D.core_reclassification(C.get_run(s,0.0),learner="linear_conv",**kw))
    cl=np.concatenate(cl)
    print(name,"AUC min 10%%: %.3f 3%%: %.3f"%(min(aucs[:10]),min(aucs[10:])),"poison-in-final-core",pic,"clean q99/q99.9 %.2f/%.2f frac>3 %.4f"%(np.quantile(cl,.99),np.quantile(cl,.999),(cl>3).mean()),"t %.0fs"%(time.perf_counter()-t0),flush=True)
