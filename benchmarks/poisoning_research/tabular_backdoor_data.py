"""(B) Tabular backdoor on breast_cancer: 3 weakly-label-correlated features set to their
99th-percentile (in-range) values, label -> benign (1); poisoned from malignant training rows.
Models: RandomForest, HistGradientBoosting, LogisticRegression (sklearn)."""
import os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np, json, time, warnings, sys
warnings.filterwarnings("ignore")
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.ensemble import RandomForestClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.decomposition import PCA
from sklearn.covariance import MinCovDet
from sklearn.metrics import roc_auc_score
import tabular as T

X0, y0 = load_breast_cancer(return_X_y=True)
corr = np.abs([np.corrcoef(X0[:, j], y0)[0, 1] for j in range(X0.shape[1])])
TRIG = np.argsort(corr)[:3]                       # the 3 features least correlated with the label
TVAL = np.quantile(X0[:, TRIG], 0.99, axis=0)
TARGET = 1
MODELS = {"rf": lambda s: RandomForestClassifier(200, random_state=s, n_jobs=1),
          "hgb": lambda s: HistGradientBoostingClassifier(random_state=s),
          "lr": lambda s: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))}

def make(seed, rate):
    Xtr, Xte, ytr, yte = train_test_split(X0, y0, test_size=0.3, stratify=y0, random_state=seed)
    Xtr = Xtr.copy(); ytr = ytr.copy(); n = len(ytr); m = np.zeros(n, bool)
    k = int(round(rate * n))
    if k:
        idx = np.random.default_rng(1000 + seed).choice(np.flatnonzero(ytr != TARGET), k, replace=False)
        Xtr[np.ix_(idx, TRIG)] = TVAL; ytr[idx] = TARGET; m[idx] = True
    return Xtr, ytr, Xte, yte, m

