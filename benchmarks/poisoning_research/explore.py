import common as C, numpy as np
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.decomposition import PCA
from sklearn.cluster import KMeans
from sklearn.covariance import MinCovDet
from sklearn.neighbors import NearestNeighbors

def per_class(fn, reps, y):
    s=np.zeros(len(y))
    for c in range(10):
        i=np.flatnonzero(y==c); s[i]=fn(reps[i])
    return s

def spectral(R):
    Rc=R-R.mean(0); u,sv,vt=np.linalg.svd(Rc,full_matrices=False)
    s=(Rc@vt[0])**2; return s/np.median(s)

def robust_maha(R,k=8):
    Rc=R-np.median(R,0); p=PCA(k,random_state=0).fit(Rc); Z=p.transform(Rc)
    mcd=MinCovDet(random_state=0).fit(Z); return mcd.mahalanobis(Z)

def ac_small(R):
    Z=PCA(10,random_state=0).fit_transform(R-R.mean(0)); km=KMeans(2,n_init=10,random_state=0).fit(Z)
    lab=km.labels_; small=np.argmin(np.bincount(lab)); return (lab==small).astype(float)

for rate in (0.10,0.03):
  for s in range(3):
    d=C.get_run(s,rate); y=d['y']; m=d['mask']
    out={}
    for L in ('penult','conv'):
        out[f'spec_{L}']=per_class(spectral,d[L],y)
        out[f'rmaha_{L}']=per_class(robust_maha,d[L],y)
    out['ac_small_penult']=per_class(ac_small,d['penult'],y)
    lg=d['logits']; lab=lg[np.arange(len(y)),y]; other=lg.copy(); other[np.arange(len(y)),y]=-1e9
    out['max_other_logit']=other.max(1)
    out['neg_margin']=other.max(1)-lab
    for e in (0,1,2,4,14): out[f'negloss_ep{e+1}']=-d['losses'][e]
    # loss-drop speed
    X=d['x'].reshape(len(y),-1); nn_=NearestNeighbors(n_neighbors=11).fit(X); _,ind=nn_.kneighbors(X)
    out['knn_disagree_pix']=(y[ind[:,1:]]!=y[:,None]).mean(1)
    sil=[]
    for c in range(10):
        i=np.flatnonzero(y==c); Z=PCA(10,random_state=0).fit_transform(d['penult'][i]-d['penult'][i].mean(0))
        km=KMeans(2,n_init=10,random_state=0).fit(Z); sil.append(silhouette_score(Z,km.labels_))
    print(f"rate {rate} seed {s}: silhouette per class", np.round(sil,2))
    print("   ", {k:round(roc_auc_score(m,v),3) for k,v in out.items()})
    # within class 0 only
    i0=y==0
    print("    class0-only", {k:round(roc_auc_score(m[i0],v[i0]),3) for k,v in out.items()})
for s in range(3):
    d=C.get_run(s,0.0); y=d['y']; sil=[]
    for c in range(10):
        i=np.flatnonzero(y==c); Z=PCA(10,random_state=0).fit_transform(d['penult'][i]-d['penult'][i].mean(0))
        km=KMeans(2,n_init=10,random_state=0).fit(Z); sil.append(silhouette_score(Z,km.labels_))
    print(f"clean seed {s}: silhouette", np.round(sil,2))
