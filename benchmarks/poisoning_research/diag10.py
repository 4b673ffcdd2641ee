import common as C, detectors as D, numpy as np
from sklearn.metrics import roc_auc_score
for s in range(10):
    d=C.get_run(s,0.10); m=d['mask']; y=d['y']
    sc,info=D.core_reclassification(d,learner="linear_conv",return_info=True)
    i0=np.flatnonzero(y==0); R=d['conv'][i0]
    dist=(D._robust_whiten(R,8)**2).sum(1)
    core0=i0[np.argsort(dist)[:int(round(0.4*len(i0)))]]
    print(s,"AUC %.3f"%roc_auc_score(m,sc),"class0 n",len(i0),"poison",m[i0].sum(),"init-core poison",m[core0].sum(),"final-core poison",(info['core']&m).sum(),"sizes",info['sizes'], "rmaha class0 AUC %.3f"%roc_auc_score(m[i0],dist))
