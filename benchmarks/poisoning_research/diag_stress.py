import common as C, detectors as D, numpy as np
for (r,tg,tr) in [(0.10,1,"br"),(0.10,0,"pat"),(0.20,0,"br")]:
    for s in range(5):
        d=C.get_run(s,r,tg,tr); m=d['mask']; y=d['y']
        i=np.flatnonzero(y==tg); dist=(D._robust_whiten(d['conv'][i],8)**2).sum(1)
        core=i[np.argsort(dist)[:int(round(0.4*len(i)))]]
        print(f"r{r} t{tg} {tr} s{s}: target class n={len(i)} poison={m[i].sum()} ({m[i].mean():.0%}) initial-core poison {m[core].sum()}/{len(core)}")
