import common as C, numpy as np, warnings, torch, time
warnings.filterwarnings("ignore")
from sklearn.decomposition import PCA
from sklearn.covariance import MinCovDet
from guard.demo import DigitsSplit
def within(R,k=8):
    Z=PCA(k,random_state=0).fit_transform(R-np.median(R,0)); mcd=MinCovDet(random_state=0).fit(Z); return mcd.mahalanobis(Z)
def core_detect(d,L,keep=0.4,seed=0):
    y=d['y']; n=len(y); core=np.zeros(n,bool); sc=np.zeros(n)
    for c in range(10):
        i=np.flatnonzero(y==c); s=within(d[L][i]); sc[i]=s
        core[i[np.argsort(s)[:int(round(keep*len(i)))]]]=True
    sp=DigitsSplit(d['x'][core],y[core],d['x'][:1],y[:1])
    m=C.train_cnn(sp,seed=seed)
    with torch.no_grad(): p=torch.softmax(m(torch.as_tensor(d['x'])),1).numpy()
    return core,sc,p
for rate in (0.10,0.03,0.0):
  for s in range(4):
    d=C.get_run(s,rate); y=d['y']; msk=d['mask']
    for L in ('penult','conv'):
        t=time.perf_counter(); core,sc,p=core_detect(d,L); t=time.perf_counter()-t
        pred=p.argmax(1); dis=(pred!=y)&~core
        frac=[dis[y==c].sum()/max((~core&(y==c)).sum(),1) for c in range(10)]
        py=p[np.arange(len(y)),y]
        print(f"r{rate} s{s} {L}: poison in core {int((core&msk).sum())}, disagree flags {dis.sum()} P/R {C.prf(dis,msk)} class-frac {np.round(frac,2)} t{t:.1f}")
        if rate>0: print("    poison py q95 %.3g, clean-noncore py<0.01 count %d, poison-py<0.01 %d"%(np.quantile(py[msk],.95),((py<0.01)&~msk&~core).sum(),((py<0.01)&msk).sum()))
        else: print("    clean-noncore py<0.01 count %d"%(((py<0.01)&~core).sum()))
