import tabular as T, numpy as np, time
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.svm import SVC
from sklearn.metrics import roc_auc_score
M={"lr1":lambda: make_pipeline(StandardScaler(),LogisticRegression(C=1,max_iter=2000)),
   "lr0.1":lambda: make_pipeline(StandardScaler(),LogisticRegression(C=0.1,max_iter=2000)),
   "knn15":lambda: make_pipeline(StandardScaler(),KNeighborsClassifier(15)),
   "svc":lambda: make_pipeline(StandardScaler(),SVC(C=1,probability=True,random_state=0)),
   "rf":lambda: RandomForestClassifier(200,min_samples_leaf=3,random_state=0,n_jobs=1)}
def probs(names,X,y,s,folds):
    return np.mean([T.oof_proba(M[n](),X,y,s,folds) for n in names],0)
for dname,loader in (("breast_cancer",load_breast_cancer),("wine",load_wine)):
    X,y=loader(return_X_y=True); K=len(np.unique(y))
    for names in (["lr1"],["lr0.1"],["svc"],["lr0.1","knn15"],["lr0.1","svc","knn15"],["lr0.1","svc","knn15","rf"]):
      for folds in (5,10):
        t=time.perf_counter()
        cal=[T.confident_learning(probs(names,X,y,s,folds),y)[2] for s in range(100,110)]
        thr=T.calibrate(cal,0.01); P1=[];R1=[];P2=[];R2=[];A=[];CF=[]
        for s in range(10):
            yn,m=T.flips(y,0.1,s,K); cj,_,sc=T.confident_learning(probs(names,X,yn,s,folds),yn)
            p,r=T.prf(cj,m);P1.append(p);R1.append(r); p,r=T.prf(sc>thr,m);P2.append(p);R2.append(r);A.append(roc_auc_score(m,sc))
        for s in range(3):
            CF.append((T.confident_learning(probs(names,X,y,s,folds),y)[2]>thr).mean())
        print(f"{dname:13s} {'+'.join(names):22s} f{folds:<2d} CJ P {min(P1):.2f}-{max(P1):.2f} R {min(R1):.2f}-{max(R1):.2f} | margin@1%clean P {min(P2):.2f}-{max(P2):.2f} R {min(R2):.2f}-{max(R2):.2f} clean {max(CF)*100:.1f}% | AUC {min(A):.3f} | {time.perf_counter()-t:.0f}s",flush=True)
