import common as C, numpy as np, warnings
warnings.filterwarnings("ignore")
from sklearn.decomposition import PCA
from sklearn.covariance import MinCovDet
from scipy.linalg import expm
def scores(R,k=8,alpha=4.0):
    mu0=np.median(R,0); Z=PCA(k,random_state=0).fit_transform(R-mu0)
    mcd=MinCovDet(random_state=0).fit(Z)
    w,V=np.linalg.eigh(mcd.covariance_); W=V@np.diag(w**-0.5)@V.T
    Zw=(Z-mcd.location_)@W
    S=np.cov(Zw.T); lam=np.linalg.eigvalsh(S)[-1]
    Q=expm(alpha*(S-np.eye(k))/max(lam-1,1e-6)); que=np.einsum('ij,jk,ik->i',Zw,Q,Zw)/np.trace(Q)
    return (Zw**2).sum(1), que, lam
def run(d,L='penult',k=8):
    y=d['y']; n=len(y); M=np.zeros(n); Qs=np.zeros(n); lams=[]
    for c in range(10):
        i=np.flatnonzero(y==c); a,b,l=scores(d[L][i],k); M[i]=a; Qs[i]=b; lams.append(l)
    return M,Qs,np.array(lams)
for L in ('penult','conv'):
  for k in (8,):
    print("==",L,k)
    cm=[];cq=[];cl=[]
    for s in list(range(10))+list(range(100,110)):
        M,Q,l=run(C.get_run(s,0.0),L,k); cm.append(M); cq.append(Q); cl.append(l)
    cm=np.concatenate(cm); cq=np.concatenate(cq); cl=np.stack(cl)
    print("clean maha quantiles 90/99/99.9/max", np.round(np.quantile(cm,[.9,.99,.999,1]),1))
    print("clean que quantiles", np.round(np.quantile(cq,[.9,.99,.999,1]),1))
    print("clean lam_max per class: max over runs", np.round(cl.max(0),1), "median", np.round(np.median(cl,0),1))
    for rate in (0.10,0.03):
        for s in range(5):
            d=C.get_run(s,rate); M,Q,l=run(d,L,k); m=d['mask']
            print(f" r{rate} s{s} lam0 {l[0]:.1f} others max {l[1:].max():.1f} | poison maha q05/q50 {np.quantile(M[m],.05):.1f}/{np.median(M[m]):.1f} clean q99/max {np.quantile(M[~m],.99):.1f}/{M[~m].max():.1f} | poison que q05 {np.quantile(Q[m],.05):.1f} clean q99/max {np.quantile(Q[~m],.99):.1f}/{Q[~m].max():.1f}")
