import common as C, numpy as np, warnings, torch, time
warnings.filterwarnings("ignore")
from sklearn.decomposition import PCA
from sklearn.covariance import MinCovDet
from guard.demo import DigitsSplit
def within(R,k=8):
    Z=PCA(k,random_state=0).fit_transform(R-np.median(R,0)); mcd=MinCovDet(random_state=0).fit(Z); return mcd.mahalanobis(Z), mcd.support_
def fitp(x,y,idx,seed):
    m=C.train_cnn(DigitsSplit(x[idx],y[idx],x[:1],y[:1]),seed=seed)
    with torch.no_grad(): return torch.softmax(m(torch.as_tensor(x)),1).numpy()
def run(d,L='conv',keep=0.4,iters=3,seed=0,thr=0.5):
    y=d['y']; n=len(y); core=np.zeros(n,bool); sup=np.zeros(n,bool)
    for c in range(10):
        i=np.flatnonzero(y==c); s,su=within(d[L][i]); sup[i]=su
        core[i[np.argsort(s)[:int(round(keep*len(i)))]]]=True
    hist=[]
    for t in range(iters):
        p=fitp(d['x'],y,core,seed+t); py=p[np.arange(n),y]
        new=core|(py>=thr); hist.append(int(core.sum()))
        if (new==core).all(): break
        core=new
    return core,py,hist,sup
for rate in (0.10,0.03,0.0):
  for s in range(3):
    d=C.get_run(s,rate); y=d['y']; msk=d['mask']
    t=time.perf_counter(); core,py,hist,sup=run(d); t=time.perf_counter()-t
    out=~core
    print(f"r{rate} s{s}: core sizes {hist}, final {core.sum()} poison-in-core {(core&msk).sum()} mcd-support frac cls0 {sup[y==0].mean():.2f} others {sup[y!=0].mean():.2f} t {t:.1f}")
    for th in (1e-2,1e-3,1e-4):
        f=out&(py<th); print(f"   py<{th}: flags {f.sum()} P/R {np.round(C.prf(f,msk),3)} clean flags {int((f&~msk).sum())} per-class {np.bincount(y[f],minlength=10)}")
